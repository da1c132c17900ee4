//! grail-chain: everything the roles need from the outside world except storage.
//!
//! It owns the `Chain` trait and its two backends (a local clock chain, the embedded
//! default, and Subtensor over subxt), the drand client with BLS verification (and a local
//! beacon verified by the same code), and hotkey loading.
//!
//! Status: scaffold; the backends land with their own issue.
