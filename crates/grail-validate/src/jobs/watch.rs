//! Client jobs of other validators' gateways, verified here too: every validator reads the
//! registered validators' buckets for their open jobs (`jobs/index.json`, each job's
//! canonical bytes at `jobs/{id}.job`, checked against its id), checks their lanes by the
//! same rules as its own jobs' and credits the delivered groups in its own weights. Each
//! validator keeps its own record of what each job has been delivered, folded by the same
//! pure rule (`delivery::lane_window`) from the same verdicts, so all validators credit the
//! same groups; only the accepting gateway streams the rollouts to the client.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use grail_jobs::api::IndexEntry;
use grail_jobs::limits::MAX_JOB_BYTES;
use grail_jobs::JobEnvironment;
use grail_proto::Hotkey;
use grail_store::{layout, Store};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::book::JobBook;
use super::delivery::lane_window;
use grail_node::NodeError;

/// Largest `jobs/index.json` read from another validator's bucket.
const MAX_INDEX_BYTES: u64 = 1 << 20;

/// How many foreign jobs are followed: per origin validator and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Open jobs followed per validator (its first ones by id).
    pub per_validator: usize,
    /// Open jobs followed in all.
    pub total: usize,
}

/// The other validators' jobs this validator verifies, and what it credited of each.
pub struct JobWatch {
    path: PathBuf,
    limits: WatchLimits,
    book: Mutex<JobBook>,
    envs: Mutex<HashMap<String, JobEnvironment>>,
}

impl JobWatch {
    /// The watch saved at `path` (a new one when there is none).
    ///
    /// # Errors
    /// The file exists and is not a watch.
    pub fn open(path: PathBuf, limits: WatchLimits) -> Result<Self, NodeError> {
        let book: JobBook = grail_node::read_json(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            limits,
            book: Mutex::new(book),
            envs: Mutex::new(HashMap::new()),
        })
    }

    /// Reads each validator's open jobs and starts following the new ones (up to the
    /// limits; ids in `skip`, this validator's own, are left out). A bucket, index or job
    /// that cannot be read within [`READ_BUDGET`] is logged and skipped; nothing is locked
    /// while buckets are read.
    pub async fn refresh(&self, validators: &[(Hotkey, Store)], skip: &HashSet<String>, now: u64) {
        let (known, loaded, mut open) = {
            let book = self.book.lock().await;
            let envs = self.envs.lock().await;
            let known: HashSet<String> = book.jobs.keys().cloned().collect();
            let loaded: HashSet<String> = envs.keys().cloned().collect();
            (known, loaded, book.open(now).len())
        };
        // The jobs to start following (with their origin), and bytes of known ones.
        let mut new: Vec<(String, JobEnvironment)> = Vec::new();
        let mut reloaded: Vec<JobEnvironment> = Vec::new();
        for (origin, store) in validators {
            let Some(ids) = open_ids(origin, store, skip, now).await else {
                continue;
            };
            for id in ids.into_iter().take(self.limits.per_validator) {
                if known.contains(&id) {
                    if !loaded.contains(&id) {
                        reloaded.extend(load(store, &id).await);
                    }
                    continue;
                }
                let pending = new.iter().any(|(_, j)| j.job_id().to_string() == id);
                if open >= self.limits.total || pending {
                    continue;
                }
                if let Some(env) = load(store, &id).await {
                    new.push((format!("validator:{}", origin.to_ss58()), env));
                    open += 1;
                }
            }
        }
        let mut book = self.book.lock().await;
        let mut envs = self.envs.lock().await;
        for env in reloaded {
            envs.insert(env.job_id().to_string(), env);
        }
        let added = !new.is_empty();
        for (origin, env) in new {
            let id = env.job_id().to_string();
            book.record(&origin, env.job(), now);
            info!(job = %id, %origin, "following another validator's job");
            envs.insert(id, env);
        }
        // Forget the environments of jobs no longer open (their records stay).
        let still: HashSet<String> = book.open(now).iter().map(|j| j.to_string()).collect();
        envs.retain(|id, _| still.contains(id));
        book.recent.clear();
        if added {
            if let Err(e) = grail_node::write_json(&self.path, &*book) {
                warn!("cannot save the followed jobs: {e}");
            }
        }
    }

    /// The ids of the followed jobs open at `now` (Unix seconds).
    pub async fn open_ids(&self, now: u64) -> Vec<String> {
        let book = self.book.lock().await;
        book.open(now).iter().map(|j| j.to_string()).collect()
    }

    /// The followed jobs open at `now` whose bytes are loaded.
    pub async fn lanes(&self, now: u64) -> Vec<JobEnvironment> {
        let open = self.open_ids(now).await;
        let envs = self.envs.lock().await;
        open.iter().filter_map(|id| envs.get(id).cloned()).collect()
    }

    /// Folds one window of a followed job's lane into its record by the gateway's rule;
    /// returns each miner uid's credit (delivered groups).
    ///
    /// # Errors
    /// The record cannot be saved (nothing is credited then).
    pub async fn credit(
        &self,
        job: &JobEnvironment,
        reports: &[grail_proto::verifier::MinerReport],
        sealed: &grail_proto::archive::SealedWindow,
    ) -> Result<BTreeMap<u16, f64>, NodeError> {
        let id = job.job_id().to_string();
        let mut book = self.book.lock().await;
        let Some(record) = book.jobs.get(&id) else {
            return Ok(BTreeMap::new());
        };
        let lane = lane_window(
            record,
            &record.digests,
            record.rollouts,
            reports,
            sealed,
            "",
            &|_| String::new(),
        );
        let mut next = book.clone();
        if let Some(r) = next.jobs.get_mut(&id) {
            lane.fold_into(r);
        }
        grail_node::write_json(&self.path, &next)?;
        *book = next;
        Ok(lane.credits)
    }
}

/// How long one read of another validator's bucket may take.
pub const READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// The ids of the jobs open at `now` in `origin`'s index and not in `skip`, sorted; `None`
/// (logged) when the index cannot be read.
async fn open_ids(
    origin: &Hotkey,
    store: &Store,
    skip: &HashSet<String>,
    now: u64,
) -> Option<Vec<String>> {
    let read = tokio::time::timeout(
        READ_BUDGET,
        store.get_capped(layout::JOBS_INDEX, MAX_INDEX_BYTES),
    );
    let index: Vec<IndexEntry> = match read.await {
        Ok(Ok(f)) => match serde_json::from_slice(&f.bytes) {
            Ok(index) => index,
            Err(e) => {
                warn!(validator = %origin.to_ss58(), "its jobs index is not readable: {e}");
                return None;
            }
        },
        Ok(Err(grail_store::StoreError::NotFound { .. })) => return None,
        Ok(Err(e)) => {
            warn!(validator = %origin.to_ss58(), "cannot read its jobs index: {e}");
            return None;
        }
        Err(_) => {
            warn!(validator = %origin.to_ss58(), "no jobs index within {} s; skipped", READ_BUDGET.as_secs());
            return None;
        }
    };
    let mut ids: Vec<String> = index
        .into_iter()
        .filter(|e| e.deadline_unix > now && !skip.contains(&e.id))
        .map(|e| e.id)
        .collect();
    ids.sort();
    ids.dedup();
    Some(ids)
}

/// A job's canonical bytes from `store`, checked against `id`; `None` (logged) otherwise.
async fn load(store: &Store, id: &str) -> Option<JobEnvironment> {
    let want: grail_jobs::JobId = match id.parse() {
        Ok(want) => want,
        Err(e) => {
            warn!(job = %id.chars().take(80).collect::<String>(), "not a job id: {e}");
            return None;
        }
    };
    let key = layout::job(id);
    let read = tokio::time::timeout(READ_BUDGET, store.get_capped(&key, MAX_JOB_BYTES as u64));
    let loaded = match read.await {
        Ok(Ok(f)) => JobEnvironment::load(&f.bytes).map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", READ_BUDGET.as_secs())),
    };
    match loaded {
        Ok(env) if env.job_id() == want => Some(env),
        Ok(_) => {
            warn!(job = %id, "the bucket's job bytes hash to another job; skipped");
            None
        }
        Err(e) => {
            warn!(job = %id, "cannot load another validator's job; skipped: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use grail_jobs::Job;

    use super::*;
    use crate::testing::job;

    /// A validator's bucket publishing `jobs` in its index (and their bytes).
    async fn bucket(dir: &std::path::Path, jobs: &[Job]) -> Store {
        let store = grail_node::wiring::open_store(&format!("local:{}", dir.display())).unwrap();
        let mut index = Vec::new();
        for j in jobs {
            let id = j.id().to_string();
            store
                .put(&layout::job(&id), j.canonical_bytes().into())
                .await
                .unwrap();
            index.push(IndexEntry {
                id,
                deadline_unix: j.deadline_unix,
                remaining: vec![2],
            });
        }
        let bytes = serde_json::to_vec(&index).unwrap();
        store.put(layout::JOBS_INDEX, bytes.into()).await.unwrap();
        store
    }

    #[tokio::test]
    async fn other_validators_jobs_are_followed_within_the_caps() {
        let dir = tempfile::tempdir().unwrap();
        let a = bucket(&dir.path().join("a"), &[job(1), job(2), job(3)]).await;
        let b = bucket(&dir.path().join("b"), &[job(4), job(5)]).await;
        // A bucket whose index names a job whose bytes are another job's: skipped.
        let c = bucket(&dir.path().join("c"), &[job(6)]).await;
        c.put(
            &layout::job(&job(6).id().to_string()),
            job(7).canonical_bytes().into(),
        )
        .await
        .unwrap();
        // And one with an index that is not one.
        let d =
            grail_node::wiring::open_store(&format!("local:{}", dir.path().join("d").display()))
                .unwrap();
        d.put(layout::JOBS_INDEX, "not json".into()).await.unwrap();
        let validators = vec![
            (Hotkey([1; 32]), a),
            (Hotkey([2; 32]), b),
            (Hotkey([3; 32]), c),
            (Hotkey([4; 32]), d),
        ];
        let path = dir.path().join("watch.json");
        let limits = WatchLimits {
            per_validator: 2,
            total: 3,
        };
        let watch = JobWatch::open(path.clone(), limits).unwrap();
        // This validator's own job 5 is left out.
        let own: HashSet<String> = [job(5).id().to_string()].into();
        watch.refresh(&validators, &own, 2_000).await;
        let mut a_first: Vec<String> = [1, 2, 3].map(|n| job(n).id().to_string()).into();
        a_first.sort();
        let mut want = vec![
            a_first[0].clone(),
            a_first[1].clone(),
            job(4).id().to_string(),
        ];
        want.sort();
        let mut got = watch.open_ids(2_000).await;
        got.sort();
        assert_eq!(
            got, want,
            "two of a's (by id), b's job 4, nothing of c or d"
        );
        assert_eq!(watch.lanes(2_000).await.len(), 3);
        // Past the jobs' deadline nothing is open; the records stay on disk.
        assert!(watch.open_ids(10_000).await.is_empty());
        let reopened = JobWatch::open(path, limits).unwrap();
        assert_eq!(reopened.open_ids(2_000).await.len(), 3);
        // After a restart the bytes are loaded again on the next refresh.
        assert!(reopened.lanes(2_000).await.is_empty());
        reopened.refresh(&validators, &own, 2_000).await;
        assert_eq!(reopened.lanes(2_000).await.len(), 3);
    }
}
