//! The local clock chain: blocks from the clock, registrations, commitments, endpoints and
//! weights (with a version key and commit-reveal) shared by several handles (as by several
//! processes) without lost updates, and typed errors for corrupt or locked state.

use std::time::Duration;

use grail_chain::local::LocalChain;
use grail_chain::{Chain, ChainError, Commitment, Endpoint, WEIGHTS_VERSION_KEY};
use grail_proto::signing::Keypair;

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_registrations_commitments_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let chain = LocalChain::open_or_create(dir.path(), 81, 100).unwrap();
    assert_eq!(chain.netuid(), 81);
    let again = LocalChain::open(dir.path()).unwrap();
    assert_eq!(again.genesis(), chain.genesis(), "reopening keeps genesis");

    let b0 = chain.block_number().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let b1 = chain.block_number().await.unwrap();
    assert!(b1 >= b0 + 2, "{b0} → {b1}");
    let h = chain.block_hash(b1).await.unwrap();
    assert_eq!(h, again.block_hash(b1).await.unwrap());
    assert_ne!(h, chain.block_hash(b0).await.unwrap());
    assert!(matches!(
        chain.block_hash(b1 + 1000).await,
        Err(ChainError::FutureBlock { .. })
    ));
    let t0 = chain.block_timestamp_ms(b0).await.unwrap();
    assert_eq!(chain.block_timestamp_ms(b0 + 3).await.unwrap(), t0 + 300);
    // Another chain directory has other hashes.
    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalChain::open_or_create(other_dir.path(), 81, 100).unwrap();
    assert_ne!(other.hash_of(1), chain.hash_of(1));

    let (validator, miner, stranger) = (key(1), key(2), key(3));
    assert_eq!(chain.register(validator.public(), 1000, true).unwrap(), 0);
    assert_eq!(chain.register(miner.public(), 0, false).unwrap(), 1);
    assert_eq!(
        chain.register(miner.public(), 0, false).unwrap(),
        1,
        "idempotent"
    );
    let mg = again.metagraph().await.unwrap();
    assert_eq!(mg.neurons.len(), 2);
    assert_eq!(mg.by_hotkey(&miner.public()).unwrap().uid, 1);

    let c = Commitment::new(b"local:/tmp/miner".to_vec()).unwrap();
    chain.commit(&miner, &c).await.unwrap();
    assert_eq!(again.commitments().await.unwrap()[&miner.public()], c);
    assert!(matches!(
        chain.commit(&stranger, &c).await,
        Err(ChainError::NotRegistered { hotkey, netuid: 81 }) if hotkey == stranger.public()
    ));

    chain
        .set_weights(&validator, &[(1, 65535)], 0)
        .await
        .unwrap();
    assert_eq!(again.weights(0).await.unwrap(), vec![(1, 65535)]);
    assert_eq!(chain.state().unwrap().weight_history.len(), 1);
    assert!(matches!(
        chain.set_weights(&miner, &[(1, 1)], 0).await,
        Err(ChainError::NoValidatorPermit { uid: 1 })
    ));
    assert!(matches!(
        chain.set_weights(&validator, &[(1, 1), (1, 2)], 0).await,
        Err(ChainError::DuplicateWeightUid { uid: 1 })
    ));
    assert!(matches!(
        chain.set_weights(&validator, &[(9, 1)], 0).await,
        Err(ChainError::UnknownWeightUid {
            uid: 9,
            registered: 2
        })
    ));
    assert!(matches!(
        chain.set_weights(&stranger, &[(1, 1)], 0).await,
        Err(ChainError::NotRegistered { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_published_by_registered_hotkeys_only() {
    let dir = tempfile::tempdir().unwrap();
    let chain = LocalChain::open_or_create(dir.path(), 81, 1000).unwrap();
    let (validator, stranger) = (key(1), key(2));
    chain.register(validator.public(), 1000, true).unwrap();
    assert!(chain.endpoints().await.unwrap().is_empty());
    let first = Endpoint::new("127.0.0.1:8080".parse().unwrap());
    chain.serve_endpoint(&validator, &first).await.unwrap();
    let second = Endpoint::new("203.0.113.7:9000".parse().unwrap());
    chain.serve_endpoint(&validator, &second).await.unwrap();
    // Another handle (another process) reads the latest one.
    let again = LocalChain::open(dir.path()).unwrap();
    let endpoints = again.endpoints().await.unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[&validator.public()], second);
    assert!(matches!(
        chain.serve_endpoint(&stranger, &first).await,
        Err(ChainError::NotRegistered { .. })
    ));
    let bind_address = Endpoint::new("0.0.0.0:8080".parse().unwrap());
    assert!(matches!(
        chain.serve_endpoint(&validator, &bind_address).await,
        Err(ChainError::UnpublishableEndpoint {
            problem: grail_chain::endpoint::EndpointProblem::BindAddress,
            ..
        })
    ));
    // A state file written before endpoints existed still reads.
    std::fs::write(
        dir.path().join("state.json"),
        br#"{"neurons": [], "commitments": {}, "weights": {}, "weight_history": []}"#,
    )
    .unwrap();
    assert!(chain.endpoints().await.unwrap().is_empty());
    // A corrupt key is a typed error, not a panic.
    std::fs::write(
        dir.path().join("state.json"),
        br#"{"neurons": [], "commitments": {}, "weights": {}, "weight_history": [],
            "endpoints": {"zz": {"addr": "127.0.0.1:1", "version": 3}}}"#,
    )
    .unwrap();
    assert!(matches!(
        chain.endpoints().await,
        Err(ChainError::CorruptState { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_version_key_and_commit_reveal() {
    let dir = tempfile::tempdir().unwrap();
    // 50 ms blocks.
    let chain = LocalChain::open_or_create(dir.path(), 81, 50).unwrap();
    let validator = key(1);
    chain.register(validator.public(), 1000, true).unwrap();
    chain.register(key(2).public(), 0, false).unwrap();

    chain
        .set_weights_version_key(WEIGHTS_VERSION_KEY + 1)
        .unwrap();
    let err = chain
        .set_weights(&validator, &[(1, 65535)], WEIGHTS_VERSION_KEY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::VersionKeyTooOld { ours, required } if ours == WEIGHTS_VERSION_KEY && required == WEIGHTS_VERSION_KEY + 1),
        "{err}"
    );
    chain.set_weights_version_key(WEIGHTS_VERSION_KEY).unwrap();
    chain
        .set_weights(&validator, &[(1, 65535)], WEIGHTS_VERSION_KEY)
        .await
        .unwrap();
    assert_eq!(chain.weights(0).await.unwrap(), vec![(1, 65535)]);

    // Commit-reveal: new weights stay hidden for 4 blocks (200 ms), then replace the old.
    chain.set_commit_reveal(Some(4)).unwrap();
    let set_at = chain.current_block();
    chain
        .set_weights(&validator, &[(0, 7), (1, 65535)], WEIGHTS_VERSION_KEY)
        .await
        .unwrap();
    if chain.current_block() < set_at + 3 {
        assert_eq!(chain.weights(0).await.unwrap(), vec![(1, 65535)]);
        assert_eq!(chain.state().unwrap().pending_weights.len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chain.weights(0).await.unwrap(), vec![(0, 7), (1, 65535)]);
    // The next change settles the reveal in the state file.
    chain.set_commit_reveal(None).unwrap();
    let state = chain.state().unwrap();
    assert!(state.pending_weights.is_empty());
    assert_eq!(state.weight_history.len(), 2);
    assert_eq!(state.weight_history[1].version_key, WEIGHTS_VERSION_KEY);
    assert!(state.weight_history[1].block >= set_at);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    LocalChain::open_or_create(dir.path(), 1, 1000).unwrap();
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                // Each thread opens its own handle (its own lock file descriptor), like a
                // separate process would.
                let chain = LocalChain::open(&path).unwrap();
                for i in 0..10u8 {
                    chain
                        .register(key(t * 10 + i + 1).public(), 0, false)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let state = LocalChain::open(dir.path()).unwrap().state().unwrap();
    assert_eq!(state.neurons.len(), 80);
    let mut uids: Vec<u16> = state.neurons.iter().map(|n| n.uid).collect();
    uids.dedup();
    assert_eq!(uids, (0..80).collect::<Vec<u16>>());
    // Atomic writes leave no temporary files behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["genesis.json", "state.json", "state.lock"]);
}

#[test]
fn corrupt_and_locked_state_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let chain = LocalChain::open_or_create(dir.path(), 1, 1000)
        .unwrap()
        .with_lock_timeout(Duration::from_millis(200));
    chain.register(key(1).public(), 0, true).unwrap();

    // Another process holds the lock.
    let holder = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("state.lock"))
        .unwrap();
    holder.lock().unwrap();
    assert!(matches!(
        chain.register(key(2).public(), 0, false),
        Err(ChainError::Locked { .. })
    ));
    holder.unlock().unwrap();
    chain.register(key(2).public(), 0, false).unwrap();

    std::fs::write(dir.path().join("state.json"), b"{\"neurons\": [tru").unwrap();
    // Unparseable state keeps the parse error as its source.
    let err = chain.state().unwrap_err();
    assert!(matches!(err, ChainError::StateJson { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(matches!(
        chain.register(key(3).public(), 0, false),
        Err(ChainError::StateJson { .. })
    ));
    std::fs::write(dir.path().join("genesis.json"), b"{}").unwrap();
    assert!(matches!(
        LocalChain::open(dir.path()),
        Err(ChainError::StateJson { .. })
    ));
    // Parseable but invalid: our own check.
    std::fs::write(
        dir.path().join("genesis.json"),
        br#"{"chain_id": "00", "genesis_ms": 0, "block_time_ms": 1000, "netuid": 1}"#,
    )
    .unwrap();
    assert!(matches!(
        LocalChain::open(dir.path()),
        Err(ChainError::CorruptState { .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        LocalChain::open(empty.path()),
        Err(ChainError::NoLocalChain { .. })
    ));
}
