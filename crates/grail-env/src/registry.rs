//! Environments by name.

use std::path::Path;

use crate::math::{DatasetFormat, DatasetMath, ProceduralMath};
use crate::sat::SatEnv;
use crate::{EnvError, Environment};

/// The registered environment names.
pub fn names() -> &'static [&'static str] {
    &["sat", "math", "echo", "gsm8k", "hendrycks-math"]
}

/// The environment called `name`. Dataset environments (`gsm8k`, `hendrycks-math`) read
/// the JSONL file at `dataset`; the others ignore it.
pub fn by_name(name: &str, dataset: Option<&Path>) -> Result<Box<dyn Environment>, EnvError> {
    let need_file = |format| {
        let path = dataset.ok_or_else(|| {
            EnvError::Config(format!("environment `{name}` needs a dataset file (JSONL)"))
        })?;
        DatasetMath::load(path, format).map(|d| Box::new(d) as Box<dyn Environment>)
    };
    match name {
        "sat" => Ok(Box::new(SatEnv)),
        "echo" => Ok(Box::new(crate::echo::EchoEnv)),
        "math" => Ok(Box::new(ProceduralMath)),
        "gsm8k" => need_file(DatasetFormat::Gsm8k),
        "hendrycks-math" => need_file(DatasetFormat::HendrycksMath),
        other => Err(EnvError::Config(format!(
            "unknown environment `{other}` (known: {})",
            names().join(", ")
        ))),
    }
}
