//! grail-store: object storage for everything that moves between roles.
//!
//! It owns the key layout, size limits and integrity hashes for miner window bundles,
//! validator sealed-window archives and trainer checkpoints, over `object_store` backends
//! (a local directory by default, S3/R2 by configuration).
//!
//! Status: scaffold; the store lands with its own issue.
