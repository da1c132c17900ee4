//! The job gateway's HTTP handlers.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tracing::{info, warn};

use grail_jobs::limits::MAX_JOB_BYTES;
use grail_jobs::spec::parse_request;
use grail_jobs::{Job, JobError, JobId};
use grail_store::{layout, Store};

use super::book::{Admission, BookLimits, JobBook, JobRecord};
use super::delivery::lane_window;
use super::keys::ApiKeys;
use grail_jobs::api::{Accepted, IndexEntry, JobStatus};
use grail_jobs::JobEnvironment;
use grail_node::NodeError;

/// Unix seconds now (the gateway's clock; tests pass their own).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp().max(0) as u64)
}

/// Everything the handlers share.
pub struct Gateway {
    keys: ApiKeys,
    limits: BookLimits,
    book: tokio::sync::Mutex<JobBook>,
    book_path: PathBuf,
    store: Store,
    clock: Clock,
    /// Loaded jobs by id (hex).
    envs: tokio::sync::Mutex<std::collections::HashMap<String, JobEnvironment>>,
}

/// A book record as its status.
fn status_of(r: &JobRecord, now: u64) -> JobStatus {
    let delivered = r.groups_delivered();
    JobStatus {
        id: r.id.clone(),
        state: r.state(now).to_string(),
        submitted_unix: r.submitted_unix,
        deadline_unix: r.deadline_unix,
        groups_wanted: r.delivered.len() as u64 * u64::from(r.groups_per_prompt),
        groups_delivered: delivered,
        rollouts_delivered: r.rollouts,
        delivered_per_prompt: r.delivered.clone(),
        rejected: r.rejected.clone(),
        accepted: r.accepted,
        in_zone_share: (r.accepted > 0).then(|| r.in_zone as f64 / r.accepted as f64),
        cost: grail_jobs::api::JobCost {
            credit_units: delivered as f64,
            completion_tokens: r.completion_tokens,
        },
    }
}

/// A book record as its index entry.
fn index_entry(r: &JobRecord) -> IndexEntry {
    IndexEntry {
        id: r.id.clone(),
        deadline_unix: r.deadline_unix,
        remaining: r.remaining(),
    }
}

/// An error answer: `{"error": …, "field": …}`.
fn refuse(status: StatusCode, error: impl ToString, field: Option<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    }
    let body = Json(Body {
        error: error.to_string(),
        field,
    });
    if status == StatusCode::UNAUTHORIZED {
        return (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
    }
    (status, body).into_response()
}

fn job_error(e: JobError) -> Response {
    let status = match e {
        JobError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let field = match &e {
        JobError::Invalid { field, .. } => Some(field.clone()),
        _ => None,
    };
    refuse(status, e, field)
}

impl Gateway {
    /// A gateway over `store` (the validator's bucket), keeping its book at `book_path`
    /// (loaded when it exists).
    pub fn open(
        keys: ApiKeys,
        limits: BookLimits,
        store: Store,
        book_path: PathBuf,
        clock: Clock,
    ) -> Result<Self, NodeError> {
        let book = match std::fs::read(&book_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                NodeError::Config(format!("{}: not a job book: {e}", book_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => JobBook::default(),
            Err(e) => return Err(NodeError::io(format!("reading {}", book_path.display()), e)),
        };
        Ok(Self {
            keys,
            limits,
            book: tokio::sync::Mutex::new(book),
            book_path,
            store,
            clock,
            envs: Default::default(),
        })
    }

    /// The stream file of a job: one `DeliveredRollout` JSON per line, line n = cursor n.
    fn log_path(&self, id: &str) -> PathBuf {
        let dir = self.book_path.parent().unwrap_or(std::path::Path::new("."));
        dir.join("job-streams").join(format!("{id}.ndjson"))
    }

    /// The ids of the jobs open at `now` (Unix seconds): the lanes pinned at a deadline.
    pub async fn open_ids(&self, now: u64) -> Vec<String> {
        let book = self.book.lock().await;
        book.open(now).iter().map(JobId::to_string).collect()
    }

    /// The jobs open at unix time `now`, loaded from their canonical bytes in the bucket
    /// (a job that cannot be loaded is logged and skipped).
    pub async fn lanes(&self, now: u64) -> Vec<JobEnvironment> {
        let open = self.open_ids(now).await;
        let mut envs = self.envs.lock().await;
        let mut out = Vec::new();
        for id in open {
            if !envs.contains_key(&id) {
                let loaded = match self
                    .store
                    .get_capped(&layout::job(&id), MAX_JOB_BYTES as u64)
                    .await
                {
                    Ok(f) => JobEnvironment::load(&f.bytes).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match loaded {
                    Ok(env) if env.job_id().to_string() == id => {
                        envs.insert(id.clone(), env);
                    }
                    Ok(_) => {
                        warn!(%id, "the bucket's job bytes do not hash to the job's id; skipped")
                    }
                    Err(e) => warn!(%id, "cannot load the job; skipped: {e}"),
                }
            }
            if let Some(env) = envs.get(&id) {
                out.push(env.clone());
            }
        }
        out
    }

    /// Folds one window of a job's lane into the book and the job's stream; returns the
    /// credit of each miner uid (delivered groups).
    pub async fn deliver(
        &self,
        job: &JobEnvironment,
        reports: &[grail_proto::verifier::MinerReport],
        sealed: &grail_proto::archive::SealedWindow,
        archive: &str,
        decode: &dyn Fn(&[u32]) -> String,
    ) -> Result<std::collections::BTreeMap<u16, f64>, NodeError> {
        let id = job.job_id().to_string();
        let mut book = self.book.lock().await;
        let Some(record) = book.jobs.get(&id) else {
            return Ok(Default::default());
        };
        let lane = lane_window(
            record,
            &record.digests,
            record.rollouts,
            reports,
            sealed,
            archive,
            decode,
        );
        if !lane.rollouts.is_empty() {
            let path = self.log_path(&id);
            let mut lines = Vec::new();
            for r in &lane.rollouts {
                serde_json::to_writer(&mut lines, r)
                    .map_err(|e| NodeError::Config(format!("encoding a delivered rollout: {e}")))?;
                lines.push(b'\n');
            }
            append(&path, &lines)?;
        }
        let mut next = book.clone();
        if let Some(r) = next.jobs.get_mut(&id) {
            lane.fold_into(r);
        }
        self.save(&next, (self.clock)()).await?;
        *book = next;
        Ok(lane.credits)
    }

    /// The routes, with the body cap of a job document.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v2/jobs", post(submit))
            .route("/v2/jobs/{id}", get(status))
            .route("/v2/jobs/{id}/job", get(job_bytes))
            .route("/v2/jobs/{id}/rollouts", get(rollouts))
            .route("/v2/jobs", get(open_jobs))
            .layer(DefaultBodyLimit::max(MAX_JOB_BYTES))
            .with_state(self)
    }

    fn client(&self, headers: &HeaderMap) -> Option<String> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.keys.client(auth).map(str::to_string)
    }

    async fn save(&self, book: &JobBook, now: u64) -> Result<(), NodeError> {
        let index: Vec<IndexEntry> = book
            .jobs
            .values()
            .filter(|r| r.state(now) == "open")
            .map(index_entry)
            .collect();
        let index = serde_json::to_vec_pretty(&index).unwrap_or_default();
        self.store.put(layout::JOBS_INDEX, index.into()).await?;
        let bytes = serde_json::to_vec_pretty(book).unwrap_or_default();
        grail_node::write_atomic(&self.book_path, &bytes)
    }
}

async fn submit(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(client) = gw.client(&headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or unknown API key (send `Authorization: Bearer <key>`)",
            None,
        );
    };
    let now = (gw.clock)();
    // Checking a WebAssembly reward runs it: off the async threads.
    let checked = tokio::task::spawn_blocking(move || {
        parse_request(&body).and_then(|req| Job::from_request(&req, now))
    })
    .await;
    let job = match checked {
        Ok(Ok((job, _))) => job,
        Ok(Err(e)) => return job_error(e),
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("checking the job failed: {e}"),
                None,
            )
        }
    };
    let id = job.id();
    let mut book = gw.book.lock().await;
    match book.check(&client, &job, now, &gw.limits) {
        Err(refusal) => return refuse(StatusCode::TOO_MANY_REQUESTS, refusal, None),
        Ok(Admission::Known) => {
            return (StatusCode::OK, Json(accepted(&id, &book, now))).into_response()
        }
        Ok(Admission::New) => {}
    }
    // The job's bytes go to the bucket first: a job in the book is always downloadable.
    if let Err(e) = gw
        .store
        .put(&layout::job(&id.to_string()), job.canonical_bytes().into())
        .await
    {
        warn!(%id, "cannot store a submitted job: {e}");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the validator's bucket is unavailable; nothing was recorded, submit again",
            None,
        );
    }
    let mut next = book.clone();
    next.record(&client, &job, now);
    if let Err(e) = gw.save(&next, now).await {
        warn!(%id, "cannot record a submitted job: {e}");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the job could not be recorded; nothing was recorded, submit again",
            None,
        );
    }
    *book = next;
    info!(%id, client = %client, prompts = job.prompts.len(), "job accepted");
    (StatusCode::CREATED, Json(accepted(&id, &book, now))).into_response()
}

fn accepted(id: &JobId, book: &JobBook, now: u64) -> Accepted {
    let id = id.to_string();
    Accepted {
        status_url: format!("/v2/jobs/{id}"),
        job_url: format!("/v2/jobs/{id}/job"),
        status: book.jobs.get(&id).map(|r| status_of(r, now)),
        id,
    }
}

async fn status(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(refused) = gw.refusal(&headers, &id) {
        return refused;
    }
    let now = (gw.clock)();
    match gw.book.lock().await.jobs.get(&id) {
        Some(r) => Json(status_of(r, now)).into_response(),
        None => refuse(
            StatusCode::NOT_FOUND,
            format!("no job {id} on this gateway"),
            None,
        ),
    }
}

/// The 400 answer when `id` is not a job id.
fn bad_id(id: &str) -> Option<Response> {
    id.parse::<JobId>().is_err().then(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "a job id is 64 hexadecimal characters",
            None,
        )
    })
}

impl Gateway {
    /// The 401 answer without a known key, the 400 one when `id` is not a job id.
    fn refusal(&self, headers: &HeaderMap, id: &str) -> Option<Response> {
        if self.client(headers).is_none() {
            return Some(refuse(
                StatusCode::UNAUTHORIZED,
                "missing or unknown API key",
                None,
            ));
        }
        bad_id(id)
    }
}

/// Appends `bytes` to `path` (created with its folder) and syncs it.
fn append(path: &std::path::Path, bytes: &[u8]) -> Result<(), NodeError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::io(format!("creating {}", dir.display()), e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| NodeError::io(format!("opening {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_data())
        .map_err(|e| NodeError::io(format!("appending to {}", path.display()), e))
}

/// Query of `GET /v2/jobs/{id}/rollouts`.
#[derive(Debug, serde::Deserialize)]
struct StreamQuery {
    /// First rollout wanted (default 0).
    #[serde(default)]
    cursor: u64,
    /// Most rollouts in the answer (default 1 000, at most 10 000).
    limit: Option<u64>,
    /// Seconds to wait for new rollouts when there are none yet (at most 30).
    #[serde(default)]
    wait: u64,
}

/// Most rollouts per stream answer.
const MAX_STREAM_LIMIT: u64 = 10_000;

/// Lines `cursor..cursor + limit` of a job's stream file.
fn read_stream(path: &std::path::Path, cursor: u64, limit: u64) -> Result<Vec<u8>, NodeError> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NodeError::io(format!("reading {}", path.display()), e)),
    };
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file)
        .lines()
        .skip(cursor as usize)
        .take(limit as usize)
    {
        let line = line.map_err(|e| NodeError::io(format!("reading {}", path.display()), e))?;
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// `GET /v2/jobs/{id}/rollouts?cursor=N&limit=L&wait=S`: the job's verified rollouts from
/// `cursor` as NDJSON (`super::delivery::DeliveredRollout` per line), `x-next-cursor` saying where to
/// resume; with `wait`, holds the answer until a rollout arrives or the time is up.
async fn rollouts(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    axum::extract::Query(q): axum::extract::Query<StreamQuery>,
) -> Response {
    if let Some(refused) = gw.refusal(&headers, &id) {
        return refused;
    }
    let total = match gw.book.lock().await.jobs.get(&id) {
        Some(r) => r.rollouts,
        None => {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("no job {id} on this gateway"),
                None,
            )
        }
    };
    let limit = q.limit.unwrap_or(1_000).clamp(1, MAX_STREAM_LIMIT);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(q.wait.min(30));
    let mut total = total;
    while total <= q.cursor && std::time::Instant::now() < give_up {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        total = gw.book.lock().await.jobs.get(&id).map_or(0, |r| r.rollouts);
    }
    // Only what the book has recorded: a line written by a delivery still in flight is
    // not served before its counts are.
    let end = total.min(q.cursor.saturating_add(limit));
    let path = gw.log_path(&id);
    let take = end.saturating_sub(q.cursor);
    let body = match tokio::task::spawn_blocking(move || read_stream(&path, q.cursor, take)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e, None),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e, None),
    };
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("x-next-cursor"),
                end.max(q.cursor).to_string(),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /v2/jobs`: the open jobs (public: miners read it to find work).
async fn open_jobs(State(gw): State<Arc<Gateway>>) -> Response {
    let now = (gw.clock)();
    let book = gw.book.lock().await;
    let open: Vec<IndexEntry> = book
        .jobs
        .values()
        .filter(|r| r.state(now) == "open")
        .map(index_entry)
        .collect();
    Json(open).into_response()
}

async fn job_bytes(State(gw): State<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(refused) = bad_id(&id) {
        return refused;
    }
    match gw
        .store
        .get_capped(&layout::job(&id), MAX_JOB_BYTES as u64)
        .await
    {
        Ok(fetched) => {
            ([(header::CONTENT_TYPE, "application/json")], fetched.bytes).into_response()
        }
        Err(grail_store::StoreError::NotFound { .. }) => refuse(
            StatusCode::NOT_FOUND,
            format!("no job {id} on this gateway"),
            None,
        ),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, e, None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use grail_jobs::reward::encode_module;
    use grail_jobs::spec::{JobRequest, PromptRequest};
    use grail_jobs::RewardSpec;

    use super::*;

    const KEY: &str = "test-key-0123456789abcdefghij";
    const OTHER_KEY: &str = "test-key-other-0123456789abcd";

    fn request(n: usize) -> JobRequest {
        JobRequest {
            prompts: (0..3)
                .map(|i| PromptRequest {
                    prompt: Some(format!("job {n}: what is {i} + {i}?")),
                    answer: Some((2 * i).to_string()),
                    ..Default::default()
                })
                .collect(),
            reward: RewardSpec::Numeric { tolerance: 0.0 },
            group_size: 4,
            max_new_tokens: 32,
            temperature: 1.0,
            groups_per_prompt: 2,
            deadline_unix: 5_000,
            pass_threshold: 1.0,
        }
    }

    struct Served {
        url: String,
        store: Store,
        clock: Arc<AtomicU64>,
        dir: tempfile::TempDir,
    }

    async fn serve(dir: tempfile::TempDir, clock: Arc<AtomicU64>) -> Served {
        let store = grail_node::wiring::open_store(&format!(
            "local:{}",
            dir.path().join("bucket").display()
        ))
        .unwrap();
        let keys = ApiKeys::parse(&format!("lab {KEY}\nother {OTHER_KEY}\n"), "keys").unwrap();
        let limits = BookLimits {
            jobs_per_hour: 3,
            open_per_client: 8,
            open_total: 8,
        };
        let now = clock.clone();
        let gw = Gateway::open(
            keys,
            limits,
            store.clone(),
            dir.path().join("book.json"),
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
        .unwrap();
        let addr = crate::api::serve_router("127.0.0.1:0", Arc::new(gw).routes())
            .await
            .unwrap();
        Served {
            url: format!("http://{addr}"),
            store,
            clock,
            dir,
        }
    }

    async fn post(url: &str, key: Option<&str>, body: Vec<u8>) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{url}/v2/jobs"))
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn clients_submit_jobs_and_read_their_status_over_http() {
        let s = serve(
            tempfile::tempdir().unwrap(),
            Arc::new(AtomicU64::new(1_000)),
        )
        .await;
        let body = serde_json::to_vec(&request(0)).unwrap();

        // No key, a wrong key: 401.
        assert_eq!(post(&s.url, None, body.clone()).await.0, 401);
        assert_eq!(
            post(&s.url, Some("not-a-key-at-all-0000000000"), body.clone())
                .await
                .0,
            401
        );
        // Not JSON, an unknown field, a rule broken: 400 naming what is wrong.
        let (code, e) = post(&s.url, Some(KEY), b"{not json".to_vec()).await;
        assert_eq!(code, 400, "{e}");
        let mut bad = serde_json::to_value(request(0)).unwrap();
        bad["colour"] = "red".into();
        let (code, e) = post(&s.url, Some(KEY), serde_json::to_vec(&bad).unwrap()).await;
        assert!(
            code == 400 && e["error"].as_str().unwrap().contains("colour"),
            "{e}"
        );
        let mut bad = request(0);
        bad.group_size = 1;
        let (code, e) = post(&s.url, Some(KEY), serde_json::to_vec(&bad).unwrap()).await;
        assert_eq!(
            (code, e["field"].as_str()),
            (400, Some("group_size")),
            "{e}"
        );
        // A reward module that never returns: 400 on reward.module, nothing stored.
        let mut looping = request(0);
        looping.reward = RewardSpec::Wasm {
            module: encode_module(
                &wat::parse_str(
                    r#"(module (memory (export "memory") 1)
                         (func (export "alloc") (param i32) (result i32) (i32.const 64))
                         (func (export "reward") (param i32 i32 i32 i32 i32 i32) (result f64)
                           (loop $l (br $l)) (f64.const 1)))"#,
                )
                .unwrap(),
            ),
        };
        let (code, e) = post(&s.url, Some(KEY), serde_json::to_vec(&looping).unwrap()).await;
        assert!(
            code == 400 && e["field"].as_str().unwrap().starts_with("reward.module"),
            "{e}"
        );
        // Over the body cap: 413.
        let huge = vec![b' '; MAX_JOB_BYTES + 10];
        assert_eq!(post(&s.url, Some(KEY), huge).await.0, 413);
        assert!(s.store.list("jobs/").await.unwrap().is_empty());

        // Accepted: 201, named by the job's digest, its bytes in the bucket and indexed.
        let (code, ok) = post(&s.url, Some(KEY), body.clone()).await;
        assert_eq!(code, 201, "{ok}");
        let (job, _) = Job::from_request(&request(0), 1_000).unwrap();
        let id = job.id().to_string();
        assert_eq!(ok["id"], id.as_str());
        assert_eq!(ok["status"]["groups_wanted"], 6);
        let stored = s
            .store
            .get_capped(&layout::job(&id), 1 << 20)
            .await
            .unwrap();
        assert_eq!(stored.bytes.as_ref(), job.canonical_bytes().as_slice());
        let index = s
            .store
            .get_capped(layout::JOBS_INDEX, 1 << 20)
            .await
            .unwrap();
        let index: Vec<IndexEntry> = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(
            index,
            vec![IndexEntry {
                id: id.clone(),
                deadline_unix: 5_000,
                remaining: vec![2, 2, 2],
            }]
        );
        // The same job again (another client too): 200, the same id, no second job.
        let (code, again) = post(&s.url, Some(OTHER_KEY), body.clone()).await;
        assert_eq!((code, &again["id"]), (200, &ok["id"]));

        let http = reqwest::Client::new();
        let get = |path: String, key: Option<&'static str>| {
            let mut r = http.get(format!("{}{path}", s.url));
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            r.send()
        };
        let st = get(format!("/v2/jobs/{id}"), Some(KEY)).await.unwrap();
        assert_eq!(st.status().as_u16(), 200);
        let st: serde_json::Value = st.json().await.unwrap();
        assert_eq!(st["state"], "open");
        assert_eq!(st["delivered_per_prompt"], serde_json::json!([0, 0, 0]));
        assert_eq!(
            get(format!("/v2/jobs/{id}"), None)
                .await
                .unwrap()
                .status()
                .as_u16(),
            401
        );
        let missing = "ab".repeat(32);
        assert_eq!(
            get(format!("/v2/jobs/{missing}"), Some(KEY))
                .await
                .unwrap()
                .status()
                .as_u16(),
            404
        );
        assert_eq!(
            get("/v2/jobs/xyz".into(), Some(KEY))
                .await
                .unwrap()
                .status()
                .as_u16(),
            400
        );
        // Anyone may read a job's canonical bytes (miners and validators do).
        let bytes = get(format!("/v2/jobs/{id}/job"), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(bytes.as_ref(), job.canonical_bytes().as_slice());

        // The hourly quota: two more new jobs, then 429.
        for n in 1..3 {
            let (code, e) = post(&s.url, Some(KEY), serde_json::to_vec(&request(n)).unwrap()).await;
            assert_eq!(code, 201, "{e}");
        }
        let (code, e) = post(&s.url, Some(KEY), serde_json::to_vec(&request(3)).unwrap()).await;
        assert!(
            code == 429 && e["error"].as_str().unwrap().contains("try again"),
            "{e}"
        );

        // After the deadline the job is expired and leaves the index on the next change.
        s.clock.store(5_000, Ordering::SeqCst);
        let st: serde_json::Value = get(format!("/v2/jobs/{id}"), Some(KEY))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(st["state"], "expired");

        // A restarted gateway reads its book back.
        let Served { dir, clock, .. } = s;
        let s = serve(dir, clock).await;
        let st = reqwest::Client::new()
            .get(format!("{}/v2/jobs/{id}", s.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(st.status().as_u16(), 200);
    }
}
