//! grail-node: the role loops — miner, validator, trainer — composed from the other crates.
//!
//! It is the only crate that depends on everything: configuration, the per-window loops,
//! the validator pipeline, scoring, weights, the HTTP API and metrics live here. The
//! binaries under `bins/` only parse arguments and call into it.
//!
//! Status: scaffold; the roles land with their own issue.

/// The three roles of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Generates rollouts with proofs and uploads window bundles.
    Miner,
    /// Verifies bundles, scores miners and sets weights.
    Validator,
    /// Trains on verified rollouts and publishes checkpoints.
    Trainer,
}

impl Role {
    /// The role's lowercase name, as used in binaries and logs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Miner => "miner",
            Role::Validator => "validator",
            Role::Trainer => "trainer",
        }
    }
}
