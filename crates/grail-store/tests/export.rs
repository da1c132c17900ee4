//! Parquet export: read back with arrow-rs, and with pandas when the tools environment
//! (`cargo xtask setup`) is there.

mod support;

use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{Array, RecordBatch};
use grail_store::export::{export_parquet, schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn read_back(path: &std::path::Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1, "one small file, one batch");
    batches.remove(0)
}

#[test]
fn accepted_rollouts_round_trip_through_parquet() {
    let archives = [support::sealed_window(30), support::sealed_window(31)];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollouts.parquet");
    let rows = export_parquet(&archives, &path).unwrap();
    // Each window: one accepted group of 4 rollouts; the rejected group is left out.
    assert_eq!(rows, 8);
    let batch = read_back(&path);
    assert_eq!(batch.num_rows(), 8);
    assert_eq!(batch.schema().as_ref(), &schema());

    let expected = &archives[0].entries[0].group.rollouts;
    let prompt = batch.column(9).as_list::<i32>();
    let completion = batch.column(10).as_list::<i32>();
    let logprobs = batch.column(11).as_list::<i32>();
    let reward = batch
        .column(12)
        .as_primitive::<arrow_array::types::Float64Type>();
    for (row, rollout) in expected.iter().enumerate() {
        let p = prompt.value(row);
        assert_eq!(
            p.as_primitive::<UInt32Type>().values().as_ref(),
            rollout.prompt()
        );
        let c = completion.value(row);
        assert_eq!(
            c.as_primitive::<UInt32Type>().values().as_ref(),
            rollout.completion()
        );
        let l = logprobs.value(row);
        assert_eq!(
            l.as_primitive::<Float32Type>().values().as_ref(),
            &archives[0].entries[0].recomputed_logprobs[row][..]
        );
        assert_eq!(reward.value(row), rollout.reward);
    }
    let windows = batch
        .column(0)
        .as_primitive::<arrow_array::types::UInt64Type>();
    assert_eq!(windows.value(0), 30);
    assert_eq!(windows.value(7), 31);
    assert_eq!(windows.null_count(), 0);
    let miners = batch.column(2).as_string::<i32>();
    assert_eq!(miners.value(0), hex::encode([1u8; 32]));
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp")));
}

#[test]
fn pandas_reads_the_export() {
    let Some(python) = std::env::var_os("GRAIL_TOOLS_PYTHON").filter(|p| !p.is_empty()) else {
        eprintln!("SKIPPED: GRAIL_TOOLS_PYTHON not set (`cargo xtask setup` installs pandas)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollouts.parquet");
    export_parquet(&[support::sealed_window(30)], &path).unwrap();
    let script = "import sys, pandas\n\
                  df = pandas.read_parquet(sys.argv[1])\n\
                  print(len(df), df['reward'].sum(), [int(t) for t in df['completion_tokens'][0]], \
                  df['environment'][0], int(df['window'][3]))";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run the tools python");
    assert!(
        out.status.success(),
        "pandas failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rollouts = &support::sealed_window(30).entries[0].group.rollouts;
    let total: f64 = rollouts.iter().map(|r| r.reward).sum();
    let expected = format!("4 {total:?} {:?} sat 30", rollouts[0].completion().to_vec());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}
