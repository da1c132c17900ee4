//! The raw measurement file: every gap of a [`Report`] in a small binary format, so that
//! the tables can be rendered again at another margin without measuring.

use grail_infer::InferError;

use super::recompute::Checked;
use super::run::{Condition, Report, Strategy};

impl Report {
    /// Writes the measurements (every gap) so that the report can be
    /// read again at other margins without measuring ([`Report::read_raw`]).
    pub fn write_raw(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(RAW_MAGIC);
        put_len(out, self.honest.len());
        for c in &self.honest {
            put_str(out, &c.name);
            put_checked(out, &c.checked);
        }
        let strategies: Vec<&Strategy> = self.bf16.iter().chain(&self.strategies).collect();
        out.push(u8::from(self.bf16.is_some()));
        put_len(out, strategies.len());
        for st in strategies {
            put_str(out, &st.name);
            put_checked(out, &st.checked);
            put_len(out, st.differs.len());
            out.extend(st.differs.iter().map(|&d| u8::from(d)));
        }
        put_len(out, self.edits.len());
        for gap in &self.edits {
            out.extend_from_slice(&gap.to_le_bytes());
        }
    }

    /// Reads what [`Report::write_raw`] wrote.
    pub fn read_raw(bytes: &[u8]) -> Result<Self, InferError> {
        let mut r = Raw(bytes);
        if r.take(RAW_MAGIC.len())? != RAW_MAGIC {
            return Err(InferError::Input("not a sampling audit raw file".into()));
        }
        let mut honest = Vec::new();
        for _ in 0..r.len()? {
            honest.push(Condition {
                name: r.string()?,
                checked: r.checked()?,
            });
        }
        let has_bf16 = r.take(1)?[0] != 0;
        let mut strategies = Vec::new();
        for _ in 0..r.len()? {
            let name = r.string()?;
            let checked = r.checked()?;
            let n = r.len()?;
            let differs = r.take(n)?.iter().map(|&b| b != 0).collect();
            strategies.push(Strategy {
                name,
                differs,
                checked,
            });
        }
        let bf16 = if has_bf16 && !strategies.is_empty() {
            Some(strategies.remove(0))
        } else {
            None
        };
        let mut edits = Vec::new();
        for _ in 0..r.len()? {
            edits.push(r.f64()?);
        }
        Ok(Report {
            honest,
            bf16,
            strategies,
            edits,
        })
    }
}

/// First bytes of a raw measurement file.
const RAW_MAGIC: &[u8] = b"grail-rs/audit-sampling/raw/v2-gumbel\n";

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_checked(out: &mut Vec<u8>, c: &Checked) {
    put_len(out, c.len());
    for r in 0..c.len() {
        put_len(out, c.gaps[r].len());
        for gap in c.rollout(r) {
            out.extend_from_slice(&gap.to_le_bytes());
        }
    }
}

/// A reader over raw measurement bytes; running out is an error, never a panic.
struct Raw<'a>(&'a [u8]);

impl<'a> Raw<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InferError> {
        if n > self.0.len() {
            return Err(InferError::Input(
                "sampling audit raw file is truncated".into(),
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, InferError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn f64(&mut self) -> Result<f64, InferError> {
        self.u64().map(f64::from_bits)
    }

    /// A count, bounded by the bytes left so that a corrupt file cannot allocate wildly.
    fn len(&mut self) -> Result<usize, InferError> {
        let n = self.u64()?;
        if n > self.0.len() as u64 {
            return Err(InferError::Input(
                "sampling audit raw file is corrupt".into(),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, InferError> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| InferError::Input("sampling audit raw file is corrupt".into()))
    }

    fn checked(&mut self) -> Result<Checked, InferError> {
        let mut c = Checked::default();
        for _ in 0..self.len()? {
            let n = self.len()?;
            let mut gaps = Vec::with_capacity(n);
            for _ in 0..n {
                gaps.push(self.f64()?);
            }
            c.gaps.push(gaps);
        }
        Ok(c)
    }
}
