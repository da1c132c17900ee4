//! An exact emulation of CPython 3's `random.Random` (MT19937, seeding version 2).
//!
//! Only what the reference protocols use: seeding from bytes/str/int, `getrandbits`,
//! `_randbelow`, `random`, `randint`, `shuffle` and `sample`, reproducing CPython's exact
//! draw sequences (including `sample`'s choice between its pool and set algorithms).

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

/// CPython's `random.Random`.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish()
    }
}

impl PyRandom {
    /// `Random(seed)` for a `bytes` (or `bytearray`) seed: the integer
    /// `int.from_bytes(seed + sha512(seed), "big")`.
    pub fn from_bytes(seed: &[u8]) -> Self {
        let mut be = seed.to_vec();
        be.extend_from_slice(&Sha512::digest(seed));
        Self::from_be_magnitude(&be)
    }

    /// `Random(seed)` for a `str` seed (its UTF-8 bytes, then as [`Self::from_bytes`]).
    pub fn from_str_seed(seed: &str) -> Self {
        Self::from_bytes(seed.as_bytes())
    }

    /// `Random(seed)` for an `int` seed (its absolute value is used).
    pub fn from_int(seed: i128) -> Self {
        Self::from_be_magnitude(&seed.unsigned_abs().to_be_bytes())
    }

    /// Seeds from the big-endian bytes of a non-negative integer: the key is its 32-bit
    /// limbs, least significant first, without zero high limbs (`[0]` for zero).
    pub fn from_be_magnitude(be: &[u8]) -> Self {
        let first = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        let digits = &be[first..];
        let mut key: Vec<u32> = digits
            .rchunks(4)
            .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            .collect();
        if key.is_empty() {
            key.push(0);
        }
        let mut r = Self {
            mt: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % N] & 0x7fff_ffff);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.mt[i] = v;
        }
        self.index = 0;
    }

    /// MT19937's next tempered 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k ≤ 64` (larger `k` is clamped to 64).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        let k = k.min(64);
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        // Words fill from the least significant end; the last is shifted right.
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        low | (high << 32)
    }

    /// `_randbelow(n)`: rejection sampling with `getrandbits(bit_length(n))`; 0 for `n = 0`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random()`: a float in `[0, 1)` with 53 random bits (two draws).
    pub fn random(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `randint(a, b)`: an integer in `[a, b]` (`a ≤ b`).
    pub fn randint(&mut self, a: i64, b: i64) -> i64 {
        let span = (b as i128 - a as i128 + 1).max(0) as u64;
        a.wrapping_add(self.randbelow(span) as i64)
    }

    /// `shuffle(x)` in place.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }

    /// `sample(population, k)`; `None` when `k > len(population)` (CPython raises).
    pub fn sample<T: Clone>(&mut self, population: &[T], k: usize) -> Option<Vec<T>> {
        let n = population.len();
        if k > n {
            return None;
        }
        let mut setsize = 21usize;
        if k > 5 {
            let exp = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(exp.ceil() as u32);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool = population.to_vec();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                out.push(pool[j].clone());
                pool[j] = pool[n - i - 1].clone();
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                out.push(population[j].clone());
            }
        }
        Some(out)
    }
}
