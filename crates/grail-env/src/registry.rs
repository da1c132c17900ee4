//! Environments by name, and environment specs (tiers and weighted mixes).
//!
//! A spec is one part or several joined by `+`; a part is `[WEIGHT*]NAME[:TIER]`:
//! `math` (levels 0–3), `math:1` (tier 1 only), `sat:0`, `gsm8k`, or a mix such as
//! `3*math:0 + 2*math:1 + math:2`. One part is that environment itself; several make a
//! [`Mix`]. A mix part's label in the mix's id is canonical (`math:1` however it was
//! spaced or zero-padded). A mix has one `dataset` file, so it holds at most one dataset
//! environment.

use std::path::Path;

use crate::math::{DatasetFormat, DatasetMath, MathTier, ProceduralMath};
use crate::mix::{Mix, Part};
use crate::sat::{SatEnv, SatTier};
use crate::{EnvError, Environment};

/// The registered environment names.
pub fn names() -> &'static [&'static str] {
    &["sat", "math", "echo", "gsm8k", "hendrycks-math"]
}

/// The environment of a spec (see the module docs). Dataset environments (`gsm8k`,
/// `hendrycks-math`) read the JSONL file at `dataset`; the others ignore it.
pub fn by_name(spec: &str, dataset: Option<&Path>) -> Result<Box<dyn Environment>, EnvError> {
    let parts: Vec<&str> = spec.split('+').map(str::trim).collect();
    if parts.len() == 1 {
        let (weight, label) = split_weight(parts[0])?;
        if weight != 1 {
            return Err(EnvError::LoneWeight { spec: spec.into() });
        }
        return labelled_part(label, dataset).map(|(_, env)| env);
    }
    let parts = parts
        .into_iter()
        .map(|p| {
            let (weight, label) = split_weight(p)?;
            let (label, env) = labelled_part(label, dataset)?;
            Ok(Part { weight, label, env })
        })
        .collect::<Result<Vec<_>, EnvError>>()?;
    Ok(Box::new(Mix::new(parts)?))
}

fn split_weight(part: &str) -> Result<(u32, &str), EnvError> {
    match part.split_once('*') {
        None => Ok((1, part.trim())),
        Some((w, label)) => {
            let weight = w
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(|| EnvError::BadWeight { part: part.into() })?;
            Ok((weight, label.trim()))
        }
    }
}

/// The environment of one part and its canonical label (`name` or `name:tier`, whatever
/// spacing or leading zeros the spec had), which goes into a mix's id.
fn labelled_part(
    label: &str,
    dataset: Option<&Path>,
) -> Result<(String, Box<dyn Environment>), EnvError> {
    let (name, tier) = match label.split_once(':') {
        None => (label, None),
        Some((n, t)) => {
            let tier = t.trim().parse::<u8>().map_err(|source| EnvError::BadTier {
                label: label.into(),
                source,
            })?;
            (n.trim(), Some(tier))
        }
    };
    let need_file = |format| {
        let path = dataset.ok_or_else(|| EnvError::NeedsDataset { env: name.into() })?;
        DatasetMath::load(path, format).map(|d| Box::new(d) as Box<dyn Environment>)
    };
    let untiered = |env: Result<Box<dyn Environment>, EnvError>| match tier {
        None => env,
        Some(_) => Err(EnvError::Untiered {
            label: label.into(),
        }),
    };
    let canonical = match tier {
        None => name.to_string(),
        Some(t) => format!("{name}:{t}"),
    };
    let env: Box<dyn Environment> = match (name, tier) {
        ("sat", None) => Box::new(SatEnv),
        ("sat", Some(t)) => Box::new(SatTier::new(t)?),
        ("math", None) => Box::new(ProceduralMath),
        ("math", Some(t)) => Box::new(MathTier::new(t)?),
        ("echo", _) => untiered(Ok(Box::new(crate::echo::EchoEnv)))?,
        ("gsm8k", _) => untiered(need_file(DatasetFormat::Gsm8k))?,
        ("hendrycks-math", _) => untiered(need_file(DatasetFormat::HendrycksMath))?,
        (other, _) => {
            return Err(EnvError::UnknownEnvironment {
                name: other.into(),
                known: names(),
            })
        }
    };
    Ok((canonical, env))
}
