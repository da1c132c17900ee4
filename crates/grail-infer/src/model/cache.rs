//! The KV cache: keys and values of every layer, preallocated, optionally left-padded.

use tch::{Device, Tensor};

use super::Model;

/// Keys and values of every layer for a batch of rows, preallocated to a capacity.
pub struct KvCache {
    pub(super) keys: Vec<Tensor>,
    pub(super) values: Vec<Tensor>,
    pub(super) len: i64,
    pub(super) capacity: i64,
    /// Leading padding slots of each row (prompts of different lengths, left-padded to
    /// one); empty when no row has any.
    pub(super) pads: Vec<i64>,
}

impl KvCache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows in the batch.
    pub fn rows(&self) -> usize {
        self.keys.first().map_or(0, |k| k.size()[0] as usize)
    }

    /// Keeps only the given rows (in that order); used to drop finished completions and
    /// to fan one prefilled prompt out to M rows (`rows = [0; M]`).
    pub fn select_rows(&mut self, rows: &[i64]) {
        if !self.pads.is_empty() {
            self.pads = rows.iter().map(|&r| self.pads[r as usize]).collect();
        }
        let device = self.keys.first().map_or(Device::Cpu, Tensor::device);
        let index = Tensor::from_slice(rows).to_device(device);
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, &index);
        }
    }
}

impl Model {
    /// An empty cache for `rows` sequences of up to `capacity` positions.
    pub fn new_cache(&self, rows: usize, capacity: usize) -> KvCache {
        let c = &self.config;
        let shape = [
            rows as i64,
            c.kv_heads() as i64,
            capacity as i64,
            c.head_dim() as i64,
        ];
        let zeros = || Tensor::zeros(shape, (self.kind, self.device));
        KvCache {
            keys: (0..c.num_hidden_layers).map(|_| zeros()).collect(),
            values: (0..c.num_hidden_layers).map(|_| zeros()).collect(),
            len: 0,
            capacity: capacity as i64,
            pads: Vec::new(),
        }
    }

    /// A cache for rows whose first `pads[r]` slots are padding (left-padded prompts of
    /// different lengths): row `r`'s slot `j` holds position `j − pads[r]`, and no row
    /// attends to its padding. Results equal an unpadded run's up to summation order.
    pub fn new_padded_cache(&self, pads: &[usize], capacity: usize) -> KvCache {
        let mut cache = self.new_cache(pads.len(), capacity);
        if pads.iter().any(|&p| p > 0) {
            cache.pads = pads.iter().map(|&p| p as i64).collect();
        }
        cache
    }
}
