//! The store's contract, run on every backend: in memory, a local directory, and a real
//! S3 API server (`moto_server`) through the production S3 client.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use grail_proto::archive::encode_archive;
use grail_proto::params::MAX_BUNDLE_BYTES;
use grail_proto::signing::Keypair;
use grail_proto::Hotkey;
use grail_store::{layout, sha256, Store, StoreConfig, StoreError, MULTIPART_PART_BYTES};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use support::Moto;

/// put/get/head/list/delete, missing keys and the size cap.
async fn basic_operations(store: &Store) {
    assert!(store.head("a/missing").await.unwrap().is_none());
    assert!(matches!(
        store.get_capped("a/missing", 10).await,
        Err(StoreError::NotFound { .. })
    ));
    for (key, body) in [("a/one", "first"), ("a/two", "second!"), ("b/three", "x")] {
        store.put(key, Bytes::from(body)).await.unwrap();
    }
    let before = Utc::now() - chrono::Duration::minutes(5);
    let meta = store.head("a/two").await.unwrap().expect("present");
    assert_eq!(meta.size, 7);
    assert!(
        meta.last_modified > before,
        "LastModified comes from the store"
    );
    let got = store.get_capped("a/two", 7).await.unwrap();
    assert_eq!(&got.bytes[..], b"second!");
    assert_eq!(got.sha256, sha256(b"second!"));
    match store.get_capped("a/two", 6).await {
        Err(StoreError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (7, 6)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let listed: Vec<String> = store
        .list("a/")
        .await
        .unwrap()
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(listed, ["a/one", "a/two"]);
    store.put("a/one", Bytes::from("replaced")).await.unwrap();
    assert_eq!(
        &store.get_capped("a/one", 100).await.unwrap().bytes[..],
        b"replaced"
    );
    store.delete("a/one").await.unwrap();
    store.delete("a/one").await.unwrap(); // absent is fine
    assert!(store.head("a/one").await.unwrap().is_none());
    assert_eq!(store.list("a/").await.unwrap().len(), 1);
}

/// Objects over one part go up as a multipart upload and come back whole.
async fn multipart_round_trip(store: &Store) -> String {
    let size = 2 * MULTIPART_PART_BYTES + 12_345;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    store
        .put("big/object", Bytes::from(body.clone()))
        .await
        .unwrap();
    let meta = store.head("big/object").await.unwrap().expect("present");
    assert_eq!(meta.size, size as u64);
    let got = store.get_capped("big/object", size as u64).await.unwrap();
    assert_eq!(got.sha256, sha256(&body));
    assert!(got.bytes == body);
    meta.e_tag.unwrap_or_default()
}

/// Bundles: digest published after the bytes, deadlines from the store's LastModified,
/// substitution and unfinished uploads detected, oversized uploads refused.
async fn bundle_rules(store: &Store) {
    let miner = Hotkey([5; 32]);
    let bytes = b"bundle bytes v1".to_vec();
    let digest = store.upload_bundle(7, &miner, bytes.clone()).await.unwrap();
    assert_eq!(digest, sha256(&bytes));
    assert_eq!(store.list_bundles(7).await.unwrap(), vec![miner]);

    let later = Utc::now() + chrono::Duration::minutes(1);
    let fetched = store.fetch_bundle(7, &miner, Some(later)).await.unwrap();
    assert_eq!(&fetched.bytes[..], &bytes[..]);
    let earlier = Utc::now() - chrono::Duration::minutes(1);
    match store.fetch_bundle(7, &miner, Some(earlier)).await {
        Err(StoreError::Late {
            written, deadline, ..
        }) => assert!(written > deadline),
        other => panic!("expected Late, got {other:?}"),
    }

    // Someone swaps the bundle bytes under the published digest.
    store
        .put(&layout::bundle(7, &miner), Bytes::from("substituted"))
        .await
        .unwrap();
    assert!(matches!(
        store.fetch_bundle(7, &miner, None).await,
        Err(StoreError::HashMismatch { .. })
    ));

    // Bytes without a digest: an upload that never finished.
    let other = Hotkey([6; 32]);
    store
        .put(&layout::bundle(7, &other), Bytes::from("half"))
        .await
        .unwrap();
    assert!(matches!(
        store.fetch_bundle(7, &other, None).await,
        Err(StoreError::Incomplete { .. })
    ));
    assert!(matches!(
        store.fetch_bundle(7, &Hotkey([8; 32]), None).await,
        Err(StoreError::NotFound { .. })
    ));

    let oversized = vec![0u8; MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        store.upload_bundle(8, &miner, oversized).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(store.list_bundles(8).await.unwrap().is_empty());
}

/// Pins: what a validator fixes at the deadline is what it reads later, whatever the
/// timestamps; a replacement (same size or larger) is refused, a missing or unfinished
/// upload pins nothing.
async fn pinned_bundles(store: &Store) {
    let miner = Hotkey([21; 32]);
    assert_eq!(store.pin_bundle(12, &miner).await.unwrap(), None);
    let bytes = b"the pinned bundle".to_vec();
    store
        .upload_bundle(12, &miner, bytes.clone())
        .await
        .unwrap();
    let pin = store.pin_bundle(12, &miner).await.unwrap().expect("pinned");
    assert_eq!((pin.sha256, pin.size), (sha256(&bytes), bytes.len() as u64));
    let fetched = store
        .fetch_pinned_bundle(12, &miner, &pin, 1 << 20)
        .await
        .unwrap();
    assert_eq!(&fetched.bytes[..], &bytes[..]);
    // Over the reader's own cap: refused before reading.
    assert!(matches!(
        store.fetch_pinned_bundle(12, &miner, &pin, 4).await,
        Err(StoreError::TooLarge { .. })
    ));
    // Replaced after the pin, digest and all, by bytes of the same size and by more.
    for replacement in [b"the pinned BUNDLE".to_vec(), vec![7u8; 4096]] {
        store.upload_bundle(12, &miner, replacement).await.unwrap();
        assert!(
            matches!(
                store.fetch_pinned_bundle(12, &miner, &pin, 1 << 20).await,
                Err(StoreError::ChangedAfterPin { .. })
            ),
            "a replacement is not the pinned bundle"
        );
    }
    // Bytes swapped under the pinned digest: a substitution, not a new upload.
    let swapped = Hotkey([23; 32]);
    store
        .upload_bundle(12, &swapped, b"honest".to_vec())
        .await
        .unwrap();
    let pin = store
        .pin_bundle(12, &swapped)
        .await
        .unwrap()
        .expect("pinned");
    store
        .put(&layout::bundle(12, &swapped), Bytes::from("forged"))
        .await
        .unwrap();
    assert!(matches!(
        store.fetch_pinned_bundle(12, &swapped, &pin, 1 << 20).await,
        Err(StoreError::HashMismatch { .. })
    ));
    // Bytes without a digest (an unfinished upload) pin nothing.
    let other = Hotkey([22; 32]);
    store
        .put(&layout::bundle(12, &other), Bytes::from("half"))
        .await
        .unwrap();
    assert_eq!(store.pin_bundle(12, &other).await.unwrap(), None);

    // A job's lane is pinned apart from the subnet's: its own bytes, its own replacements.
    let job = "ab".repeat(32);
    let lane = Some(job.as_str());
    assert_eq!(store.pin_bundle_in(12, lane, &other).await.unwrap(), None);
    let lane_bytes = b"a job lane bundle".to_vec();
    store
        .upload_bundle_in(12, lane, &other, lane_bytes.clone())
        .await
        .unwrap();
    assert_eq!(store.pin_bundle(12, &other).await.unwrap(), None);
    let pin = store
        .pin_bundle_in(12, lane, &other)
        .await
        .unwrap()
        .expect("lane pinned");
    assert_eq!(pin.sha256, sha256(&lane_bytes));
    let fetched = store
        .fetch_pinned_bundle_in(12, lane, &other, &pin, 1 << 20)
        .await
        .unwrap();
    assert_eq!(&fetched.bytes[..], &lane_bytes[..]);
    store
        .upload_bundle_in(12, lane, &other, b"a job lane BUNDLE".to_vec())
        .await
        .unwrap();
    assert!(matches!(
        store
            .fetch_pinned_bundle_in(12, lane, &other, &pin, 1 << 20)
            .await,
        Err(StoreError::ChangedAfterPin { .. })
    ));
}

/// A writer that dies in the middle of a multipart upload leaves nothing a reader sees.
async fn crash_mid_upload(store: &Store, inner: &dyn ObjectStore) {
    let miner = Hotkey([11; 32]);
    let key = layout::bundle(9, &miner);
    let mut upload = inner
        .put_multipart(&Path::from(key.as_str()))
        .await
        .unwrap();
    for _ in 0..2 {
        upload
            .put_part(vec![1u8; 5 * 1024 * 1024].into())
            .await
            .unwrap();
    }
    drop(upload); // the process dies: neither complete nor abort is ever called
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(store.list_bundles(9).await.unwrap().is_empty());
    assert!(matches!(
        store.fetch_bundle(9, &miner, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A reader racing a writer that keeps replacing a bundle only ever accepts one of the
/// complete versions; everything else is a typed refusal.
async fn reader_races_writer(store: &Store) {
    let miner = Hotkey([21; 32]);
    let versions: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..4u8)
            .map(|v| vec![v; 1000 + 50_000 * v as usize])
            .collect(),
    );
    store
        .upload_bundle(12, &miner, versions[0].clone())
        .await
        .unwrap();
    let writer = {
        let (store, versions) = (store.clone(), versions.clone());
        tokio::spawn(async move {
            for round in 0..24 {
                let v = &versions[round % versions.len()];
                store.upload_bundle(12, &miner, v.clone()).await.unwrap();
            }
        })
    };
    let (mut accepted, mut refused) = (0, 0);
    while !writer.is_finished() || accepted == 0 {
        match store.fetch_bundle(12, &miner, None).await {
            Ok(f) => {
                assert!(
                    versions.iter().any(|v| f.bytes == v[..]),
                    "accepted bytes that were never uploaded whole ({} bytes)",
                    f.bytes.len()
                );
                accepted += 1;
            }
            Err(
                StoreError::HashMismatch { .. }
                | StoreError::Incomplete { .. }
                | StoreError::NotFound { .. },
            ) => refused += 1,
            Err(e) => panic!("unexpected error while racing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writer.await.unwrap();
    assert!(accepted > 0);
    eprintln!("race: {accepted} accepted, {refused} refused mid-write");
}

/// Archives are content-addressed and byte-exact; checkpoints are published with a signed
/// manifest and the latest pointer last, verified and downloaded atomically; retention.
async fn archives_checkpoints_retention(store: &Store) {
    let archive = support::sealed_window(30);
    let digest = store.put_archive(&archive).await.unwrap();
    let bytes = encode_archive(&archive).unwrap();
    assert_eq!(digest, sha256(&bytes));
    assert_eq!(store.list_archives(30).await.unwrap(), vec![digest]);
    let (back, raw) = store.get_archive(30, &digest).await.unwrap();
    assert_eq!(back, archive);
    assert_eq!(&raw[..], &bytes[..], "archives replay byte for byte");
    assert!(matches!(
        store.get_archive(30, &[0; 32]).await,
        Err(StoreError::NotFound { .. })
    ));

    let trainer = Keypair::from_uri("//Trainer").unwrap();
    let stranger = Keypair::from_uri("//Mallory").unwrap();
    assert!(store
        .latest_checkpoint(&trainer.public())
        .await
        .unwrap()
        .is_none());
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for number in 1..=3u64 {
        std::fs::write(src.join("model.safetensors"), vec![number as u8; 4096]).unwrap();
        std::fs::write(src.join("config.json"), format!("{{\"n\":{number}}}")).unwrap();
        store
            .publish_checkpoint(
                &src,
                number,
                number.checked_sub(1),
                (number * 10, number * 10 + 9),
                number * 10 + 20,
                &trainer,
            )
            .await
            .unwrap();
    }
    let latest = store
        .latest_checkpoint(&trainer.public())
        .await
        .unwrap()
        .expect("published");
    assert_eq!(latest.manifest.number, 3);
    assert_eq!(latest.manifest.parent, Some(2));
    assert!(matches!(
        store.latest_checkpoint(&stranger.public()).await,
        Err(StoreError::UntrustedTrainer { number: 3, .. })
    ));
    let mut forged = latest.clone();
    forged.manifest.windows.1 += 1;
    assert!(matches!(
        forged.verify(&trainer.public()),
        Err(StoreError::BadSignature { number: 3 })
    ));
    let dest = dir.path().join("current");
    store
        .download_checkpoint(&latest, &trainer.public(), &dest)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        vec![3u8; 4096]
    );
    // Downloading again replaces the existing folder.
    std::fs::write(dest.join("stale.bin"), b"left over").unwrap();
    store
        .download_checkpoint(&latest, &trainer.public(), &dest)
        .await
        .unwrap();
    assert!(!dest.join("stale.bin").exists());
    let staging_leftovers = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".current."))
            .collect::<Vec<_>>()
    };
    assert!(staging_leftovers().is_empty(), "{:?}", staging_leftovers());

    // A replaced weight file is caught by the manifest's hash; `dest` stays as it was.
    store
        .put(
            &layout::checkpoint_file(3, "model.safetensors"),
            Bytes::from(vec![7u8; 4096]),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .download_checkpoint(&latest, &trainer.public(), &dest)
            .await,
        Err(StoreError::HashMismatch { .. })
    ));
    assert_eq!(
        std::fs::read(dest.join("model.safetensors")).unwrap(),
        vec![3u8; 4096]
    );
    assert!(staging_leftovers().is_empty(), "{:?}", staging_leftovers());

    assert_eq!(store.prune_checkpoints(1).await.unwrap(), 6); // 2 files + manifest, ×2
    assert!(store
        .list(&layout::checkpoint_prefix(1))
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .list(&layout::checkpoint_prefix(3))
        .await
        .unwrap()
        .is_empty());

    store
        .upload_bundle(29, &Hotkey([1; 32]), b"old".to_vec())
        .await
        .unwrap();
    store
        .upload_bundle(31, &Hotkey([1; 32]), b"new".to_vec())
        .await
        .unwrap();
    let mut before_30 = 0;
    for prefix in ["bundles/", "archives/", "lanes/"] {
        for meta in store.list(prefix).await.unwrap() {
            before_30 += usize::from(layout::window_of(meta.location.as_ref()).unwrap() < 30);
        }
    }
    assert!(before_30 >= 2); // at least window 29's bundle and digest
    assert_eq!(store.prune_windows(30).await.unwrap(), before_30);
    assert!(store.list_bundles(29).await.unwrap().is_empty());
    assert_eq!(store.list_archives(30).await.unwrap(), vec![digest]);
    assert_eq!(store.list_bundles(31).await.unwrap().len(), 1);
}

async fn contract(store: &Store) {
    basic_operations(store).await;
    multipart_round_trip(store).await;
    bundle_rules(store).await;
    pinned_bundles(store).await;
    reader_races_writer(store).await;
    archives_checkpoints_retention(store).await;
}

#[tokio::test]
async fn memory_backend() {
    contract(&StoreConfig::Memory.open().unwrap()).await;
}

#[tokio::test]
async fn local_directory_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreConfig::Local {
        dir: dir.path().join("bucket"),
    }
    .open()
    .unwrap();
    contract(&store).await;
    let fs =
        object_store::local::LocalFileSystem::new_with_prefix(dir.path().join("bucket")).unwrap();
    crash_mid_upload(&store, &fs).await;
}

fn s3_client(moto: &Moto, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_endpoint(&moto.endpoint)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_allow_http(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_operations_and_rules() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket("grail-ops");
    basic_operations(&store).await;
    let etag = multipart_round_trip(&store).await;
    // S3 names multipart objects `"<md5 of part md5s>-<parts>"`: proof the upload went
    // through the multipart API, not one PUT.
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");
    bundle_rules(&store).await;
    crash_mid_upload(&store, &s3_client(&moto, "grail-ops")).await;
    archives_checkpoints_retention(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_reader_races_writer() {
    let Some(moto) = Moto::start() else { return };
    reader_races_writer(&moto.bucket("grail-race")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_a_backend_error() {
    let Some(moto) = Moto::start() else { return };
    let store = moto.bucket("grail-exists");
    drop(store);
    let missing = StoreConfig::S3 {
        bucket: "grail-missing".into(),
        endpoint: Some(moto.endpoint.clone()),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        allow_http: true,
    }
    .open()
    .unwrap();
    match missing.put("x", Bytes::from("y")).await {
        Err(StoreError::Backend { .. }) => {}
        other => panic!("expected a backend error, got {other:?}"),
    }
}
