//! Reading decoded storage values (`scale_value::Value`s shaped by the runtime's types).
//! Lookups are by field name and tolerate added fields; a shape that does not fit gives
//! `None`, never a panic.

use subxt::dynamic::Value;
use subxt::ext::scale_value::{Composite, Primitive, ValueDef};

use crate::{Commitment, Endpoint};

/// Bytes held by a composite of u8 values (also nested one level, as `AccountId32`).
pub(crate) fn value_bytes<T>(value: &Value<T>) -> Option<Vec<u8>> {
    match &value.value {
        ValueDef::Composite(c) => {
            let values: Vec<&Value<T>> = c.values().collect();
            if values.len() == 1 {
                if let Some(inner) = value_bytes(values[0]) {
                    return Some(inner);
                }
            }
            values
                .iter()
                .map(|v| match &v.value {
                    ValueDef::Primitive(Primitive::U128(b)) => u8::try_from(*b).ok(),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// An unsigned integer, also inside a one-field wrapper (`Compact`, `AlphaBalance`, …).
pub(crate) fn value_u128<T>(value: &Value<T>) -> Option<u128> {
    match &value.value {
        ValueDef::Primitive(Primitive::U128(v)) => Some(*v),
        ValueDef::Composite(c) if c.len() == 1 => value_u128(c.values().next()?),
        _ => None,
    }
}

/// A boolean.
pub(crate) fn value_bool<T>(value: &Value<T>) -> Option<bool> {
    match &value.value {
        ValueDef::Primitive(Primitive::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// The items of a sequence, tuple or composite.
pub(crate) fn value_items<T>(value: &Value<T>) -> Option<Vec<&Value<T>>> {
    match &value.value {
        ValueDef::Composite(c) => Some(c.values().collect()),
        _ => None,
    }
}

pub(crate) fn field<'a, T>(value: &'a Value<T>, name: &str) -> Option<&'a Value<T>> {
    match &value.value {
        ValueDef::Composite(Composite::Named(fields)) => {
            fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
        }
        _ => None,
    }
}

/// The commitment in a decoded `Commitments::CommitmentOf` value
/// (`Registration { info: { fields: BoundedVec([RawN(bytes), ..]) }, .. }`: the first
/// field); `None` for other shapes.
pub fn commitment_from_registration<T>(registration: &Value<T>) -> Option<Commitment> {
    let fields = field(field(registration, "info")?, "fields")?;
    match first_variant(fields)? {
        v if v.name.starts_with("Raw") => {
            let bytes = match v.values.values().next() {
                Some(inner) => value_bytes(inner)?,
                None => Vec::new(),
            };
            Commitment::new(bytes).ok()
        }
        _ => None,
    }
}

/// The first variant inside `value`, descending into the first item of composites (the
/// `BoundedVec` newtype, then the list).
fn first_variant<T>(value: &Value<T>) -> Option<&subxt::ext::scale_value::Variant<T>> {
    match &value.value {
        ValueDef::Variant(v) => Some(v),
        ValueDef::Composite(c) => first_variant(c.values().next()?),
        _ => None,
    }
}

/// The endpoint in a decoded `SubtensorModule::Axons` value
/// (`AxonInfo { block, version, ip, port, ip_type, protocol, .. }`); `None` for other
/// shapes and for records that name no address ([`Endpoint::from_axon`]).
pub fn endpoint_from_axon<T>(axon: &Value<T>) -> Option<Endpoint> {
    let number = |name| field(axon, name).and_then(value_u128);
    Endpoint::from_axon(
        number("ip")?,
        u8::try_from(number("ip_type")?).ok()?,
        u16::try_from(number("port")?).ok()?,
        u32::try_from(number("version")?).ok()?,
    )
}

/// The commits in a decoded `SubtensorModule::WeightCommits` value, as `(hash, at)`:
/// `(H256, block)` in the 2024 runtime (one commit, `at` a block), a queue of
/// `(H256, epoch, block, _)` since (`at` the commit's epoch). `None` for other shapes.
pub fn weight_commits<T>(value: &Value<T>) -> Option<Vec<([u8; 32], u64)>> {
    let entry = |v: &Value<T>| -> Option<([u8; 32], u64)> {
        let items = value_items(v)?;
        let hash = <[u8; 32]>::try_from(value_bytes(items.first()?)?).ok()?;
        let at = u64::try_from(value_u128(items.get(1)?)?).ok()?;
        Some((hash, at))
    };
    let items = value_items(value)?;
    // (H256, u64): two items, the first 32 bytes.
    if items.len() == 2 && value_bytes(items[0]).is_some_and(|b| b.len() == 32) {
        return entry(value).map(|e| vec![e]);
    }
    items.into_iter().map(entry).collect()
}
