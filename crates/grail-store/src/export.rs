//! Dataset export: accepted rollouts of sealed windows as a Parquet file (one row per
//! rollout), readable by pandas, pyarrow and Hugging Face `datasets`.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder, UInt32Builder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use grail_proto::archive::SealedWindow;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::StoreError;

/// The columns, in order.
pub fn schema() -> Schema {
    let list = |inner: DataType| DataType::List(Arc::new(Field::new("item", inner, true)));
    Schema::new(vec![
        Field::new("window", DataType::UInt64, false),
        Field::new("validator", DataType::Utf8, false),
        Field::new("miner", DataType::Utf8, false),
        Field::new("environment", DataType::Utf8, false),
        Field::new("environment_params", DataType::Utf8, false),
        Field::new("prompt_id", DataType::UInt64, false),
        Field::new("checkpoint", DataType::Utf8, false),
        Field::new("group_index", DataType::UInt32, false),
        Field::new("rollout_index", DataType::UInt32, false),
        Field::new("prompt_tokens", list(DataType::UInt32), false),
        Field::new("completion_tokens", list(DataType::UInt32), false),
        Field::new("logprobs", list(DataType::Float32), false),
        Field::new("reward", DataType::Float64, false),
        Field::new("advantage", DataType::Float64, false),
        Field::new("success", DataType::Boolean, false),
    ])
}

/// Writes the accepted rollouts of `archives` to `path` (atomically and durably, with
/// [`grail_fs::write_atomic`]); returns the number of rows.
pub fn export_parquet(archives: &[SealedWindow], path: &Path) -> Result<usize, StoreError> {
    let (mut window, mut validator, mut miner, mut env, mut params, mut prompt_id, mut checkpoint) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let (mut group_index, mut rollout_index, mut reward, mut advantage, mut success) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut prompt_tokens = ListBuilder::new(UInt32Builder::new());
    let mut completion_tokens = ListBuilder::new(UInt32Builder::new());
    let mut logprobs = ListBuilder::new(Float32Builder::new());
    for archive in archives {
        for entry in archive.accepted() {
            let h = &entry.group.header;
            for (i, r) in entry.group.rollouts.iter().enumerate() {
                window.push(archive.window);
                validator.push(hex::encode(archive.validator.0));
                miner.push(hex::encode(entry.miner.0));
                env.push(h.environment.name.clone());
                params.push(h.environment.params.clone());
                prompt_id.push(h.prompt_id);
                checkpoint.push(hex::encode(h.checkpoint));
                group_index.push(entry.group_index);
                rollout_index.push(i as u32);
                prompt_tokens.values().append_slice(r.prompt());
                prompt_tokens.append(true);
                completion_tokens.values().append_slice(r.completion());
                completion_tokens.append(true);
                // The validator's recomputation when it has one, else the uploaded claim.
                let lp = entry.recomputed_logprobs.get(i).unwrap_or(&r.logprobs);
                logprobs.values().append_slice(lp);
                logprobs.append(true);
                reward.push(r.reward);
                advantage.push(r.advantage);
                success.push(r.success);
            }
        }
    }
    let rows = window.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(window)),
        Arc::new(StringArray::from(validator)),
        Arc::new(StringArray::from(miner)),
        Arc::new(StringArray::from(env)),
        Arc::new(StringArray::from(params)),
        Arc::new(UInt64Array::from(prompt_id)),
        Arc::new(StringArray::from(checkpoint)),
        Arc::new(UInt32Array::from(group_index)),
        Arc::new(UInt32Array::from(rollout_index)),
        Arc::new(prompt_tokens.finish()),
        Arc::new(completion_tokens.finish()),
        Arc::new(logprobs.finish()),
        Arc::new(Float64Array::from(reward)),
        Arc::new(Float64Array::from(advantage)),
        Arc::new(BooleanArray::from(success)),
    ];
    let schema = Arc::new(schema());
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(StoreError::Arrow)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    // The columns are in memory already; the compressed file is smaller than they are.
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, schema, Some(props)).map_err(StoreError::Parquet)?;
    writer.write(&batch).map_err(StoreError::Parquet)?;
    writer.close().map_err(StoreError::Parquet)?;
    grail_fs::write_atomic(path, &bytes)
        .map_err(|e| StoreError::io(format!("writing {}", path.display()), e))?;
    Ok(rows)
}
