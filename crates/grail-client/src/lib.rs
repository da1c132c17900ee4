//! grail-client: the v2 job API from the client's side (docs/jobs.md).
//!
//! [`Client`] submits a job, reads its status and its canonical bytes (checked against
//! the job's id), and follows its stream of verified rollouts from a cursor;
//! [`reward_spec`] reads the command line's reward shorthand; [`export_parquet`] writes
//! rollouts as a Parquet file for pandas, pyarrow or `datasets`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Float32Builder, ListBuilder, UInt32Builder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use grail_jobs::api::{Accepted, DeliveredRollout, JobStatus};
use grail_jobs::{Job, JobId, JobRequest, RewardSpec};

/// What can go wrong talking to a gateway.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an answer.
    #[error("cannot reach {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The gateway refused (its `error`, and `field` when it names one).
    #[error("{status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The gateway's message.
        message: String,
        /// The field at fault, if named.
        field: Option<String>,
    },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from {url}: {detail}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// A job id that is not one (64 hexadecimal characters).
    #[error("`{id}` is not a job id: {source}")]
    BadJobId {
        /// The id given.
        id: String,
        /// Why it does not parse.
        #[source]
        source: grail_jobs::JobError,
    },
    /// A reward shorthand of no known kind, or without its argument.
    #[error(
        "reward `{spec}`: one of exact, numeric[:TOLERANCE], regex:PATTERN, choice:A,B,…, wasm:FILE"
    )]
    UnknownReward {
        /// The shorthand given.
        spec: String,
    },
    /// `numeric:TOLERANCE` with a tolerance that is not a number.
    #[error("numeric:{tolerance}: the tolerance must be a number: {source}")]
    BadTolerance {
        /// The tolerance given.
        tolerance: String,
        /// Why it does not parse.
        #[source]
        source: std::num::ParseFloatError,
    },
    /// A `.wat` reward module that cannot be read or assembled.
    #[error("the reward module {path}: {source}")]
    RewardText {
        /// The `.wat` file.
        path: PathBuf,
        /// The assembler's error.
        #[source]
        source: wat::Error,
    },
    /// An input file could not be read.
    #[error("reading {what} {path}: {source}")]
    Read {
        /// Which file it is (`the key file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The prompts file is not a JSONL list of prompts.
    #[error("{path}: {source}")]
    Prompts {
        /// The prompts file.
        path: PathBuf,
        /// What is wrong with it (with its line).
        #[source]
        source: grail_jobs::JobError,
    },
    /// Neither a key file nor `GRAIL_API_KEY`.
    #[error("no API key: pass --key-file or set GRAIL_API_KEY")]
    NoApiKey,
    /// A line of a rollouts file that is not a delivered rollout.
    #[error("{path}:{line}: {source}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An output file could not be opened, created, written or renamed.
    #[error("export: {action} {path}: {source}")]
    Write {
        /// What was being done (`creating`, `writing`, `renaming to`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The rollouts do not make a record batch of [`schema`].
    #[error("export: building the record batch: {source}")]
    Batch {
        /// Arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The Parquet writer failed.
    #[error("export: writing Parquet to {path}: {source}")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A rollout could not be encoded as JSON.
    #[error("export: encoding rollout {cursor} as JSON: {source}")]
    Encode {
        /// The rollout's cursor.
        cursor: u64,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

/// A gateway and the API key to use with it.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// A client of the gateway at `base` (`http://host:port`) with API key `key`.
    pub fn new(base: &str, key: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| ClientError::Http {
                url: base.into(),
                source,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            key: key.trim().to_string(),
        })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.into(),
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        Err(ClientError::Refused {
            status,
            message: body["error"].as_str().unwrap_or("no message").to_string(),
            field: body["field"].as_str().map(str::to_string),
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
        url: &str,
    ) -> Result<T, ClientError> {
        resp.json().await.map_err(|e| ClientError::Protocol {
            url: url.into(),
            detail: e.to_string(),
        })
    }

    /// Submits a job; the gateway's answer (its id and status).
    pub async fn submit(&self, job: &JobRequest) -> Result<Accepted, ClientError> {
        let url = format!("{}/v2/jobs", self.base);
        let resp = self.send(self.http.post(&url).json(job), &url).await?;
        Self::json(resp, &url).await
    }

    /// A job's status.
    pub async fn status(&self, id: &str) -> Result<JobStatus, ClientError> {
        let url = format!("{}/v2/jobs/{id}", self.base);
        let resp = self.send(self.http.get(&url), &url).await?;
        Self::json(resp, &url).await
    }

    /// A job's canonical bytes, checked: they must be a valid job whose digest is `id`.
    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        let url = format!("{}/v2/jobs/{id}/job", self.base);
        let resp = self.send(self.http.get(&url), &url).await?;
        let bytes = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        let (job, _) = Job::from_canonical(&bytes).map_err(|e| ClientError::Protocol {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let want: JobId = id.parse().map_err(|source| ClientError::BadJobId {
            id: id.into(),
            source,
        })?;
        if job.id() != want {
            return Err(ClientError::Protocol {
                url,
                detail: format!("the gateway served job {} under {id}", job.id()),
            });
        }
        Ok(job)
    }

    /// Up to `limit` rollouts from `cursor`, waiting up to `wait` seconds for the first;
    /// with the cursor to ask next.
    pub async fn rollouts(
        &self,
        id: &str,
        cursor: u64,
        limit: u64,
        wait: u64,
    ) -> Result<(Vec<DeliveredRollout>, u64), ClientError> {
        let url = format!(
            "{}/v2/jobs/{id}/rollouts?cursor={cursor}&limit={limit}&wait={wait}",
            self.base
        );
        let resp = self.send(self.http.get(&url), &url).await?;
        let next = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol {
                url: url.clone(),
                detail: "no x-next-cursor header".into(),
            })?;
        let text = resp.text().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        let rollouts = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| ClientError::Protocol {
                    url: url.clone(),
                    detail: format!("a rollout line: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rollouts, next))
    }

    /// Follows a job's stream from `cursor` until the job is complete or expired and
    /// everything delivered was read, handing each batch to `on_batch`; returns the
    /// cursor after the last rollout. A gateway that stops answering is retried with
    /// back-off (the cursor makes the stream resumable).
    pub async fn follow(
        &self,
        id: &str,
        mut cursor: u64,
        mut on_batch: impl FnMut(&[DeliveredRollout], &JobStatus) -> Result<(), ClientError>,
    ) -> Result<u64, ClientError> {
        let mut failures = 0u32;
        loop {
            let step = async {
                let (batch, next) = self.rollouts(id, cursor, 1_000, 10).await?;
                let status = self.status(id).await?;
                Ok::<_, ClientError>((batch, next, status))
            };
            match step.await {
                Ok((batch, next, status)) => {
                    failures = 0;
                    on_batch(&batch, &status)?;
                    cursor = next;
                    if status.state != "open" && cursor >= status.rollouts_delivered {
                        return Ok(cursor);
                    }
                }
                Err(e @ ClientError::Http { .. }) if failures < 5 => {
                    failures += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_secs(1 << failures)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads the reward shorthand: `exact`, `numeric[:TOLERANCE]`, `regex:PATTERN`,
/// `choice:A,B,C,D` or `wasm:FILE` (a `.wasm` module, or its `.wat` text assembled here;
/// base64-encoded into the job).
pub fn reward_spec(text: &str) -> Result<RewardSpec, ClientError> {
    let (kind, arg) = text.split_once(':').unwrap_or((text, ""));
    Ok(match kind {
        "exact" => RewardSpec::Exact,
        "numeric" => RewardSpec::Numeric {
            tolerance: if arg.is_empty() {
                0.0
            } else {
                arg.parse().map_err(|source| ClientError::BadTolerance {
                    tolerance: arg.into(),
                    source,
                })?
            },
        },
        "regex" if !arg.is_empty() => RewardSpec::Regex {
            pattern: arg.into(),
        },
        "choice" if !arg.is_empty() => RewardSpec::Choice {
            choices: arg.split(',').map(|c| c.trim().to_string()).collect(),
        },
        "wasm" if !arg.is_empty() => {
            // A `.wat` file is the text format: assembled here.
            let bytes = if arg.ends_with(".wat") {
                wat::parse_file(arg).map_err(|source| ClientError::RewardText {
                    path: arg.into(),
                    source,
                })?
            } else {
                std::fs::read(arg).map_err(|source| ClientError::Read {
                    what: "the reward module",
                    path: arg.into(),
                    source,
                })?
            };
            RewardSpec::Wasm {
                module: grail_jobs::reward::encode_module(&bytes),
            }
        }
        _ => return Err(ClientError::UnknownReward { spec: text.into() }),
    })
}

/// The Parquet columns of [`export_parquet`], in order.
pub fn schema() -> Schema {
    let list = |inner: DataType| DataType::List(Arc::new(Field::new("item", inner, true)));
    Schema::new(vec![
        Field::new("cursor", DataType::UInt64, false),
        Field::new("job", DataType::Utf8, false),
        Field::new("window", DataType::UInt64, false),
        Field::new("miner", DataType::Utf8, false),
        Field::new("prompt_index", DataType::UInt64, false),
        Field::new("group", DataType::Utf8, false),
        Field::new("rollout", DataType::UInt32, false),
        Field::new("prompt_tokens", list(DataType::UInt32), false),
        Field::new("completion_tokens", list(DataType::UInt32), false),
        Field::new("completion", DataType::Utf8, false),
        Field::new("logprobs", list(DataType::Float32), false),
        Field::new("reward", DataType::Float64, false),
        Field::new("advantage", DataType::Float64, false),
        Field::new("success", DataType::Boolean, false),
        Field::new("archive", DataType::Utf8, false),
    ])
}

/// Writes rollouts to a Parquet file at `path` (one row per rollout); returns the rows.
pub fn export_parquet(rollouts: &[DeliveredRollout], path: &Path) -> Result<usize, ClientError> {
    let mut prompt_tokens = ListBuilder::new(UInt32Builder::new());
    let mut completion_tokens = ListBuilder::new(UInt32Builder::new());
    let mut logprobs = ListBuilder::new(Float32Builder::new());
    for r in rollouts {
        prompt_tokens.values().append_slice(&r.prompt_tokens);
        prompt_tokens.append(true);
        completion_tokens
            .values()
            .append_slice(&r.completion_tokens);
        completion_tokens.append(true);
        logprobs.values().append_slice(&r.logprobs);
        logprobs.append(true);
    }
    let strings = |f: fn(&DeliveredRollout) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rollouts.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            rollouts.iter().map(|r| r.cursor),
        )),
        strings(|r| &r.job),
        Arc::new(UInt64Array::from_iter_values(
            rollouts.iter().map(|r| r.window),
        )),
        strings(|r| &r.miner),
        Arc::new(UInt64Array::from_iter_values(
            rollouts.iter().map(|r| r.prompt_index),
        )),
        strings(|r| &r.group),
        Arc::new(UInt32Array::from_iter_values(
            rollouts.iter().map(|r| r.rollout),
        )),
        Arc::new(prompt_tokens.finish()),
        Arc::new(completion_tokens.finish()),
        strings(|r| &r.completion),
        Arc::new(logprobs.finish()),
        Arc::new(Float64Array::from_iter_values(
            rollouts.iter().map(|r| r.reward),
        )),
        Arc::new(Float64Array::from_iter_values(
            rollouts.iter().map(|r| r.advantage),
        )),
        Arc::new(BooleanArray::from(
            rollouts.iter().map(|r| r.success).collect::<Vec<_>>(),
        )),
        strings(|r| &r.archive),
    ];
    let schema = Arc::new(schema());
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|source| ClientError::Batch { source })?;
    let tmp = path.with_extension("parquet.partial");
    let file = std::fs::File::create(&tmp).map_err(|source| ClientError::Write {
        action: "creating",
        path: tmp.clone(),
        source,
    })?;
    let parquet_error = |source: parquet::errors::ParquetError| ClientError::Parquet {
        path: tmp.clone(),
        source,
    };
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(parquet_error)?;
    writer.write(&batch).map_err(parquet_error)?;
    writer.close().map_err(parquet_error)?;
    std::fs::rename(&tmp, path).map_err(|source| ClientError::Write {
        action: "renaming to",
        path: path.into(),
        source,
    })?;
    Ok(rollouts.len())
}

/// What a job asks for besides its prompts and reward (the command line's options).
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    /// Rollouts per group.
    pub group_size: u32,
    /// Most tokens per completion.
    pub max_new_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Groups wanted per prompt.
    pub groups_per_prompt: u32,
    /// Seconds from now to the deadline.
    pub deadline_secs: u64,
    /// Reward at or above which a rollout counts as solved.
    pub pass_threshold: f64,
}

/// A job request from a JSONL prompts file (see `grail_jobs::spec::prompts_from_jsonl`),
/// a reward shorthand ([`reward_spec`]) and `options`, its deadline counted from `now`.
pub fn build_request(
    prompts_file: &Path,
    reward: &str,
    options: &JobOptions,
    now: u64,
) -> Result<JobRequest, ClientError> {
    let text = std::fs::read_to_string(prompts_file).map_err(|source| ClientError::Read {
        what: "the prompts file",
        path: prompts_file.into(),
        source,
    })?;
    let prompts =
        grail_jobs::spec::prompts_from_jsonl(&text).map_err(|source| ClientError::Prompts {
            path: prompts_file.into(),
            source,
        })?;
    Ok(JobRequest {
        prompts,
        reward: reward_spec(reward)?,
        group_size: options.group_size,
        max_new_tokens: options.max_new_tokens,
        temperature: options.temperature,
        groups_per_prompt: options.groups_per_prompt,
        deadline_unix: now + options.deadline_secs,
        pass_threshold: options.pass_threshold,
    })
}

/// The API key: the file's first line when a file is given, else `GRAIL_API_KEY`.
pub fn api_key(file: Option<&Path>) -> Result<String, ClientError> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|source| ClientError::Read {
                what: "the key file",
                path: f.into(),
                source,
            })
            .map(|t| t.lines().next().unwrap_or_default().trim().to_string()),
        None => std::env::var("GRAIL_API_KEY").map_err(|_| ClientError::NoApiKey),
    }
}

/// Follows a job to its end, appending every rollout as a JSON line to `out` (created if
/// absent; an existing file is resumed after its last line's cursor) and printing progress
/// to stderr; returns the rollouts written in all.
pub async fn follow_to_file(client: &Client, id: &str, out: &Path) -> Result<u64, ClientError> {
    use std::io::Write;
    let existing = std::fs::read_to_string(out).unwrap_or_default();
    let cursor = existing
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<DeliveredRollout>(l).ok())
        .map_or(0, |r| r.cursor + 1);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|source| ClientError::Write {
            action: "opening",
            path: out.into(),
            source,
        })?;
    // Rollouts received so far, the file's included (empty batches report it unchanged).
    let mut received = cursor;
    let end = client
        .follow(id, cursor, |batch, status| {
            let write = |action: &'static str| {
                move |source: std::io::Error| ClientError::Write {
                    action,
                    path: out.into(),
                    source,
                }
            };
            for r in batch {
                let line = serde_json::to_string(r).map_err(|source| ClientError::Encode {
                    cursor: r.cursor,
                    source,
                })?;
                writeln!(file, "{line}").map_err(write("writing"))?;
            }
            file.flush().map_err(write("flushing"))?;
            received = batch.last().map_or(received, |r| r.cursor + 1);
            eprintln!(
                "{}: {} of {} groups delivered, {} rollouts received, state {}",
                &id[..12.min(id.len())],
                status.groups_delivered,
                status.groups_wanted,
                received,
                status.state
            );
            Ok(())
        })
        .await?;
    Ok(end)
}

/// Reads every rollout of a job (from cursor 0) and writes them to a Parquet file.
pub async fn export(client: &Client, id: &str, out: &Path) -> Result<usize, ClientError> {
    let mut all = Vec::new();
    let mut cursor = 0;
    loop {
        let (batch, next) = client.rollouts(id, cursor, 10_000, 0).await?;
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
        cursor = next;
    }
    export_parquet(&all, out)
}

/// A few lines on an NDJSON file of rollouts: how many, of how many groups, prompts and
/// miners, the mean reward, one completion.
pub fn summarize_file(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClientError::Read {
        what: "the rollouts file",
        path: path.into(),
        source,
    })?;
    let rollouts = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<DeliveredRollout>(l).map_err(|source| ClientError::BadLine {
                path: path.into(),
                line: i + 1,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(summarize(&rollouts))
}

/// See [`summarize_file`].
pub fn summarize(rollouts: &[DeliveredRollout]) -> String {
    use std::collections::BTreeSet;
    let groups: BTreeSet<&str> = rollouts.iter().map(|r| r.group.as_str()).collect();
    let prompts: BTreeSet<u64> = rollouts.iter().map(|r| r.prompt_index).collect();
    let miners: BTreeSet<&str> = rollouts.iter().map(|r| r.miner.as_str()).collect();
    let windows: BTreeSet<u64> = rollouts.iter().map(|r| r.window).collect();
    let mean = rollouts.iter().map(|r| r.reward).sum::<f64>() / rollouts.len().max(1) as f64;
    let solved = rollouts.iter().filter(|r| r.success).count();
    let mut out = format!(
        "  {} verified rollouts in {} groups: {} prompts, {} miners, {} windows; mean reward {mean:.3}, {solved} solved\n",
        rollouts.len(),
        groups.len(),
        prompts.len(),
        miners.len(),
        windows.len(),
    );
    if let Some(best) = rollouts.iter().max_by(|a, b| a.reward.total_cmp(&b.reward)) {
        out += &format!(
            "  best: prompt {}, reward {}, advantage {:+.2}: {:?}\n",
            best.prompt_index, best.reward, best.advantage, best.completion
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(cursor: u64, reward: f64) -> DeliveredRollout {
        DeliveredRollout {
            cursor,
            job: "ab".repeat(32),
            window: 12,
            miner: "5Miner".into(),
            prompt_index: cursor / 2,
            rollout: (cursor % 2) as u32,
            group: format!("g{}", cursor / 2),
            prompt_tokens: vec![1, 2, 3],
            completion_tokens: vec![4, 5],
            completion: "42".into(),
            logprobs: vec![-0.5, -1.5],
            reward,
            advantage: reward - 0.5,
            success: reward >= 1.0,
            archive: "lanes/x".into(),
        }
    }

    #[test]
    fn reward_shorthands_read_or_say_what_is_wrong() {
        assert_eq!(reward_spec("exact").unwrap(), RewardSpec::Exact);
        assert_eq!(
            reward_spec("numeric:0.5").unwrap(),
            RewardSpec::Numeric { tolerance: 0.5 }
        );
        assert_eq!(
            reward_spec("choice:A, B,C").unwrap(),
            RewardSpec::Choice {
                choices: vec!["A".into(), "B".into(), "C".into()]
            }
        );
        assert_eq!(
            reward_spec("regex:^a:b$").unwrap(),
            RewardSpec::Regex {
                pattern: "^a:b$".into()
            }
        );
        assert!(matches!(
            reward_spec("numeric:x"),
            Err(ClientError::BadTolerance { tolerance, .. }) if tolerance == "x"
        ));
        for bad in ["regex:", "telepathy"] {
            assert!(
                matches!(reward_spec(bad), Err(ClientError::UnknownReward { spec }) if spec == bad),
                "{bad}"
            );
        }
        assert!(matches!(
            reward_spec("wasm:/no/such/file.wasm"),
            Err(ClientError::Read { path, source, .. })
                if path == Path::new("/no/such/file.wasm")
                    && source.kind() == std::io::ErrorKind::NotFound
        ));
        // The example job's text module assembles into the same bytes the tests use.
        let wat = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/jobs/sums/contains.wat"
        );
        match reward_spec(&format!("wasm:{wat}")).unwrap() {
            RewardSpec::Wasm { module } => {
                let bytes = grail_jobs::reward::decode_module(&module).unwrap();
                assert_eq!(&bytes[..4], b"\0asm");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_is_built_from_a_prompts_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.jsonl");
        std::fs::write(&file, "\"plain\"\n{\"prompt\": \"q\", \"answer\": \"1\"}\n").unwrap();
        let options = JobOptions {
            group_size: 4,
            max_new_tokens: 16,
            temperature: 0.8,
            groups_per_prompt: 2,
            deadline_secs: 60,
            pass_threshold: 1.0,
        };
        let req = build_request(&file, "regex:{answer}", &options, 1_000).unwrap();
        assert_eq!(req.prompts.len(), 2);
        assert_eq!(req.deadline_unix, 1_060);
        std::fs::write(&file, "{broken").unwrap();
        let e = build_request(&file, "exact", &options, 1_000).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn rollouts_export_to_parquet_and_summarize() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let rollouts: Vec<_> = (0..6).map(|i| rollout(i, (i % 3) as f64 / 2.0)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.parquet");
        assert_eq!(export_parquet(&rollouts, &path).unwrap(), 6);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 6);
        assert_eq!(
            reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .num_columns(),
            schema().fields().len()
        );
        let text = summarize(&rollouts);
        assert!(text.contains("6 verified rollouts in 3 groups"), "{text}");
        assert!(text.contains("mean reward 0.500"), "{text}");
        // Into a directory that does not exist: the error names the file being created.
        let missing = dir.path().join("no/such/dir/job.parquet");
        match export_parquet(&rollouts, &missing) {
            Err(ClientError::Write {
                action: "creating",
                path,
                source,
            }) => {
                assert_eq!(path, missing.with_extension("parquet.partial"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_rollouts_line_is_named_by_its_line_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ndjson");
        let good = serde_json::to_string(&rollout(0, 1.0)).unwrap();
        std::fs::write(&path, format!("{good}\n\n{{broken\n")).unwrap();
        match summarize_file(&path) {
            Err(ClientError::BadLine { path: p, line, .. }) => {
                assert_eq!((p, line), (path.clone(), 3));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            summarize_file(&dir.path().join("absent")),
            Err(ClientError::Read {
                what: "the rollouts file",
                ..
            })
        ));
    }
}
