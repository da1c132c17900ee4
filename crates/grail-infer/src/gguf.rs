//! GGUF files: parse the header and metadata, dequantize tensors to f32.
//!
//! Every length and offset is checked against the file before it is used, so a corrupt
//! or hostile file is an error, never a panic or a huge allocation.

use std::collections::HashMap;

use crate::InferError;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// No string in a sane GGUF is longer (chat templates are a few KiB).
const MAX_STRING: u64 = 1 << 24;
/// No array in a sane GGUF is longer (vocabularies and merges are a few 100k).
const MAX_ARRAY: u64 = 1 << 24;
const MAX_DIMS: u32 = 4;
/// Fewest bytes one tensor description takes: name length, one dimension, type, offset.
const MIN_TENSOR_INFO: usize = 8 + 4 + 8 + 4 + 8;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer.
    U64(u64),
    /// Any signed integer.
    I64(i64),
    /// f32 or f64.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer (non-negative signed values too).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U64(v) => Some(v),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// As a float (integers too).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F64(v) => Some(v),
            Self::U64(v) => Some(v as f64),
            Self::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The storage types we dequantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// IEEE f32.
    F32,
    /// IEEE f16.
    F16,
    /// Blocks of 32: f16 scale, 4-bit values − 8.
    Q4_0,
    /// Blocks of 32: f16 scale and minimum, 4-bit values.
    Q4_1,
    /// Blocks of 32: f16 scale, signed bytes.
    Q8_0,
}

impl TensorType {
    fn from_code(code: u32) -> Result<Self, InferError> {
        Ok(match code {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            code => return Err(InferError::UnsupportedTensorType { code }),
        })
    }

    /// (elements per block, bytes per block).
    fn block(self) -> (u64, u64) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
        }
    }
}

/// Where one tensor lies in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, fastest-varying first (GGUF order; reverse for row-major shape).
    pub dims: Vec<u64>,
    /// Storage type.
    pub kind: TensorType,
    /// Absolute byte range in the file.
    pub range: std::ops::Range<usize>,
}

impl TensorInfo {
    /// Row-major shape (slowest dimension first), as PyTorch sees it.
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }

    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file held in memory.
pub struct GgufFile {
    bytes: Vec<u8>,
    /// Metadata by key.
    pub metadata: HashMap<String, Value>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], InferError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| InferError::Gguf(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InferError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, InferError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, InferError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, InferError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(InferError::Gguf(format!("string of {len} bytes")));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| InferError::Gguf("string is not UTF-8".into()))
    }

    fn value(&mut self, code: u32, depth: u32) -> Result<Value, InferError> {
        Ok(match code {
            0 => Value::U64(self.array::<1>()?[0] as u64),
            1 => Value::I64(self.array::<1>()?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let inner = self.u32()?;
                let len = self.u64()?;
                if len > MAX_ARRAY {
                    return Err(InferError::Gguf(format!("array of {len} entries")));
                }
                // Each entry takes at least one byte: a length beyond the file is corrupt.
                if len > (self.bytes.len() - self.at) as u64 {
                    return Err(InferError::Gguf("array longer than the file".into()));
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(self.value(inner, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(InferError::Gguf(format!("metadata value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Parses a whole GGUF file (versions 2 and 3).
    pub fn parse(bytes: Vec<u8>) -> Result<Self, InferError> {
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        if r.take(4)? != MAGIC {
            return Err(InferError::NotGguf);
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(InferError::UnsupportedGgufVersion { version });
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;
        if tensor_count > 1 << 20 || kv_count > 1 << 20 {
            return Err(InferError::Gguf(
                "implausible tensor or metadata count".into(),
            ));
        }
        let mut metadata = HashMap::new();
        for _ in 0..kv_count {
            let key = r.string()?;
            let code = r.u32()?;
            let value = r.value(code, 0)?;
            metadata.insert(key, value);
        }
        // The count is untrusted: reserve only what the rest of the file can describe (a
        // 32-byte header claiming 2^20 tensors reserved 64 MiB).
        let describable = (bytes.len() - r.at) / MIN_TENSOR_INFO;
        let mut raw = Vec::with_capacity((tensor_count as usize).min(describable));
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(InferError::Gguf(format!(
                    "tensor `{name}` has {n_dims} dimensions"
                )));
            }
            let dims = (0..n_dims)
                .map(|_| r.u64())
                .collect::<Result<Vec<_>, _>>()?;
            // libtorch takes sizes as i64 and computes strides from them (a zero size
            // counting as one): both must fit, or its reshape fails (an empty tensor of
            // dimensions [0, 2^63] or [0, 2^40, 2^40] passed the byte-size check).
            let strides = dims.iter().try_fold(1i64, |acc, &d| {
                acc.checked_mul(i64::try_from(d.max(1)).ok()?)
            });
            if strides.is_none() {
                return Err(InferError::Gguf(format!(
                    "tensor `{name}` has dimensions {dims:?} beyond 64-bit sizes"
                )));
            }
            let kind = TensorType::from_code(r.u32()?)
                .map_err(|e| e.context(format!("tensor `{name}`")))?;
            let offset = r.u64()?;
            raw.push((name, dims, kind, offset));
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_ALIGNMENT)
            .max(1);
        let data_start = (r.at as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, kind, offset) in raw {
            let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let (per_block, block_bytes) = kind.block();
            let size = numel
                .filter(|n| n.is_multiple_of(per_block))
                .and_then(|n| (n / per_block).checked_mul(block_bytes));
            let range = size
                .and_then(|size| {
                    let start = data_start.checked_add(offset)?;
                    let end = start.checked_add(size)?;
                    (end <= bytes.len() as u64).then_some(start as usize..end as usize)
                })
                .ok_or_else(|| {
                    InferError::Gguf(format!("tensor `{name}` does not fit in the file"))
                })?;
            tensors.push(TensorInfo {
                name,
                dims,
                kind,
                range,
            });
        }
        Ok(Self {
            bytes,
            metadata,
            tensors,
        })
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A required unsigned metadata value.
    pub fn require_u64(&self, key: &str) -> Result<u64, InferError> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| InferError::GgufMetadata {
                key: key.into(),
                expected: "an integer",
            })
    }

    /// A required string array (vocabulary, merges).
    pub fn require_strings(&self, key: &str) -> Result<Vec<&str>, InferError> {
        let err = || InferError::GgufMetadata {
            key: key.into(),
            expected: "a string array",
        };
        match self.get(key) {
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(err)).collect(),
            _ => Err(err()),
        }
    }

    /// Dequantizes a tensor to f32 values in storage order.
    pub fn dequantize(&self, info: &TensorInfo) -> Vec<f32> {
        dequantize(info.kind, &self.bytes[info.range.clone()])
    }
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Dequantizes `data` (a whole number of blocks of `kind`) to f32.
pub fn dequantize(kind: TensorType, data: &[u8]) -> Vec<f32> {
    let (per_block, block_bytes) = kind.block();
    let mut out = Vec::with_capacity(data.len() / block_bytes as usize * per_block as usize);
    for block in data.chunks_exact(block_bytes as usize) {
        match kind {
            TensorType::F32 => {
                out.push(f32::from_le_bytes([block[0], block[1], block[2], block[3]]))
            }
            TensorType::F16 => out.push(f16_at(block, 0)),
            TensorType::Q4_0 | TensorType::Q4_1 => {
                let d = f16_at(block, 0);
                let (min, qs) = if kind == TensorType::Q4_1 {
                    (f16_at(block, 2), &block[4..20])
                } else {
                    (-8.0 * d, &block[2..18])
                };
                // Low nibbles are elements 0..16, high nibbles 16..32.
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + min));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + min));
            }
            TensorType::Q8_0 => {
                let d = f16_at(block, 0);
                out.extend(block[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
    }
    out
}

/// Test helper and import aid: encodes f32 values as one storage type (quantizing with the
/// reference block rules). Used to check dequantization round trips.
pub fn quantize(kind: TensorType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    match kind {
        TensorType::F32 => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        TensorType::F16 => values.iter().for_each(|&v| out.extend(f16(v))),
        TensorType::Q4_0 | TensorType::Q4_1 | TensorType::Q8_0 => {
            for block in values.chunks(32) {
                let mut b = [0f32; 32];
                b[..block.len()].copy_from_slice(block);
                match kind {
                    TensorType::Q8_0 => {
                        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let d = amax / 127.0;
                        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                        out.extend(f16(d));
                        out.extend(
                            b.iter()
                                .map(|v| (v * inv).round().clamp(-128.0, 127.0) as i8 as u8),
                        );
                    }
                    TensorType::Q4_1 => {
                        let min = b.iter().copied().fold(f32::INFINITY, f32::min);
                        let max = b.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let d = (max - min) / 15.0;
                        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                        out.extend(f16(d));
                        out.extend(f16(min));
                        let q = |v: f32| ((v - min) * inv).round().clamp(0.0, 15.0) as u8;
                        out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
                    }
                    _ => {
                        let m = b
                            .iter()
                            .copied()
                            .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                        let d = m / -8.0;
                        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
                        out.extend(f16(d));
                        let q = |v: f32| (v * inv + 8.0).round().clamp(0.0, 15.0) as u8;
                        out.extend((0..16).map(|j| q(b[j]) | (q(b[j + 16]) << 4)));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_layout() {
        // d = 0.5, min = -1: nibble j of the low half is element j, high half is j + 16.
        let mut block = Vec::new();
        block.extend(half::f16::from_f32(0.5).to_le_bytes());
        block.extend(half::f16::from_f32(-1.0).to_le_bytes());
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let v = dequantize(TensorType::Q4_1, &block);
        assert_eq!(v.len(), 32);
        assert_eq!(v[0], -1.0);
        assert_eq!(v[3], 0.5);
        assert_eq!(v[16], 6.5);
        assert_eq!(v[31], -1.0);
    }

    #[test]
    fn quantize_dequantize_round_trip_within_step() {
        let values: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        for (kind, step) in [
            (TensorType::F32, 0.0),
            (TensorType::F16, 2e-3),
            (TensorType::Q8_0, 2.0 / 127.0),
            (TensorType::Q4_1, 4.0 / 15.0),
            // Q4_0 is asymmetric: the end opposite the block maximum can miss by one full step.
            (TensorType::Q4_0, 2.0 * 2.0 / 8.0),
        ] {
            let back = dequantize(kind, &quantize(kind, &values));
            let err = values
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err <= step / 2.0 + 1e-3, "{kind:?}: max error {err}");
        }
    }

    /// A header, no metadata, then `tensors` described as `(name, dims, type)` with their
    /// data (zeros) at offset 0 each.
    fn gguf_with(tensor_count: u64, tensors: &[(&str, &[u64], u32)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(tensor_count.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        for (name, dims, kind) in tensors {
            out.extend((name.len() as u64).to_le_bytes());
            out.extend(name.as_bytes());
            out.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(kind.to_le_bytes());
            out.extend(0u64.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32 + 64, 0);
        out
    }

    /// Found by `cargo xtask fuzz --target gguf` (docs/reliability.md): an empty tensor
    /// (a zero dimension) may have any other dimensions and still fit the file, and
    /// libtorch's reshape then panicked on sizes beyond i64 ([0, 2^63]) or on overflowing
    /// strides ([0, 2^40, 2^40]).
    #[test]
    fn dimensions_must_fit_libtorch() {
        for dims in [
            &[0, 1 << 63][..],
            &[0, u64::MAX],
            &[0, 1 << 40, 1 << 40],
            &[1 << 32, 0, 1 << 32],
        ] {
            let err = GgufFile::parse(gguf_with(1, &[("t", dims, 0)]))
                .err()
                .unwrap();
            assert!(err.to_string().contains("beyond 64-bit"), "{dims:?}: {err}");
        }
        let ok = GgufFile::parse(gguf_with(1, &[("t", &[0, 1 << 40], 0), ("u", &[4, 2], 0)]));
        assert_eq!(ok.unwrap().tensors[0].shape(), [1 << 40, 0]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(GgufFile::parse(b"GGML\x03\0\0\0".to_vec()).is_err());
        assert!(GgufFile::parse(b"GGUF\x03\0\0\0".to_vec()).is_err());
        let mut header = b"GGUF".to_vec();
        header.extend(3u32.to_le_bytes());
        header.extend(0u64.to_le_bytes());
        header.extend(1u64.to_le_bytes());
        header.extend(4u64.to_le_bytes());
        header.extend(b"key!");
        header.extend(9u32.to_le_bytes()); // array
        header.extend(8u32.to_le_bytes()); // of strings
        header.extend(u64::MAX.to_le_bytes()); // absurd length
        assert!(GgufFile::parse(header).is_err());
    }
}
