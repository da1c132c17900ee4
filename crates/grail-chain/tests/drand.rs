//! drand: recorded quicknet and mainnet beacons verified with BLS, tampering refused, the
//! local beacon verified by the same code, and the HTTP client against good and faulty
//! relays (garbage, wrong round, bad signature, error status, timeout, nothing listening).

use std::sync::Arc;
use std::time::Duration;

use grail_chain::beacon::{serve, LocalBeacon};
use grail_chain::drand::{
    unix_now, verify_beacon, BeaconSource, ChainInfo, DrandClient, DrandError, RawBeacon,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct Recorded {
    info: ChainInfo,
    beacons: Vec<RawBeacon>,
}

#[derive(Deserialize)]
struct Fixtures {
    quicknet: Recorded,
    mainnet: Recorded,
}

fn fixtures() -> Fixtures {
    serde_json::from_str(include_str!("fixtures/drand_beacons.json")).unwrap()
}

#[test]
fn recorded_beacons_verify_and_randomness_is_sha256_of_the_signature() {
    let f = fixtures();
    assert_eq!(f.quicknet.info, ChainInfo::quicknet());
    assert_eq!(f.mainnet.info, ChainInfo::mainnet());
    for recorded in [&f.quicknet, &f.mainnet] {
        assert!(recorded.beacons.len() >= 6);
        for raw in &recorded.beacons {
            let beacon = verify_beacon(&recorded.info, raw.round, raw)
                .unwrap_or_else(|e| panic!("round {}: {e}", raw.round));
            let sig = hex::decode(&raw.signature).unwrap();
            assert_eq!(beacon.randomness, drand_verify::derive_randomness(&sig));
            if let Some(r) = &raw.randomness {
                assert_eq!(hex::encode(beacon.randomness), *r);
            }
        }
    }
}

#[test]
fn tampered_beacons_are_refused() {
    let f = fixtures();
    let q = &f.quicknet;
    let good = &q.beacons[4];
    // Another round's signature under this round number.
    assert!(matches!(
        verify_beacon(
            &q.info,
            good.round + 1,
            &RawBeacon {
                round: good.round + 1,
                ..good.clone()
            }
        ),
        Err(DrandError::BadSignature { .. })
    ));
    // The relay answers with a different round than asked.
    assert!(matches!(
        verify_beacon(&q.info, good.round + 1, good),
        Err(DrandError::WrongRound { .. })
    ));
    // A valid curve point that is another round's signature.
    let swapped = RawBeacon {
        signature: q.beacons[5].signature.clone(),
        randomness: None,
        ..good.clone()
    };
    assert!(matches!(
        verify_beacon(&q.info, good.round, &swapped),
        Err(DrandError::BadSignature { .. })
    ));
    // One flipped bit.
    let mut sig = hex::decode(&good.signature).unwrap();
    sig[20] ^= 1;
    let flipped = RawBeacon {
        signature: hex::encode(sig),
        ..good.clone()
    };
    assert!(matches!(
        verify_beacon(&q.info, good.round, &flipped),
        Err(DrandError::BadSignature { .. })
    ));
    // Randomness that is not SHA-256 of the signature.
    let lying = RawBeacon {
        randomness: Some("00".repeat(32)),
        ..good.clone()
    };
    assert!(matches!(
        verify_beacon(&q.info, good.round, &lying),
        Err(DrandError::RandomnessMismatch { .. })
    ));
    assert!(matches!(
        verify_beacon(
            &q.info,
            good.round,
            &RawBeacon {
                signature: "zz".into(),
                ..good.clone()
            }
        ),
        Err(DrandError::MalformedHex {
            what: "signature",
            ..
        })
    ));
    // Chained mainnet: the previous signature is part of the message.
    let m = &f.mainnet;
    let chained = &m.beacons[4];
    let wrong_prev = RawBeacon {
        previous_signature: m.beacons[5]
            .previous_signature
            .clone()
            .map(|p| p.replacen('9', "8", 1)),
        ..chained.clone()
    };
    assert!(matches!(
        verify_beacon(&m.info, chained.round, &wrong_prev),
        Err(DrandError::BadSignature { .. })
    ));
    let no_prev = RawBeacon {
        previous_signature: None,
        ..chained.clone()
    };
    assert!(matches!(
        verify_beacon(&m.info, chained.round, &no_prev),
        Err(DrandError::MissingPreviousSignature { round }) if round == chained.round
    ));
    // A quicknet beacon is not valid under the mainnet key, nor the reverse.
    assert!(verify_beacon(&m.info, good.round, good).is_err());
}

#[tokio::test]
async fn local_beacon_is_verified_by_the_production_path() {
    let beacon = LocalBeacon::from_seed(&[7; 32], unix_now() - 100, 1);
    let info = beacon.info().clone();
    for round in [1, 2, 50] {
        let raw = beacon.sign(round);
        let direct = verify_beacon(&info, round, &raw).unwrap();
        assert_eq!(beacon.beacon(round).await.unwrap(), direct);
    }
    assert_ne!(beacon.sign(1).signature, beacon.sign(2).signature);
    // Another local key's beacons do not verify under this key, nor under quicknet's.
    let other = LocalBeacon::from_seed(&[8; 32], info.genesis_time, 1);
    assert!(matches!(
        verify_beacon(&info, 3, &other.sign(3)),
        Err(DrandError::BadSignature { .. })
    ));
    assert!(verify_beacon(&ChainInfo::quicknet(), 3, &beacon.sign(3)).is_err());
    // A round too far ahead is refused rather than waited for.
    let far = info.round_at(unix_now()) + 100_000;
    assert!(matches!(
        beacon.beacon(far).await,
        Err(DrandError::NotYet { .. })
    ));
}

/// A relay that answers every request with `response` (after `delay`).
async fn fake_relay(response: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = stream.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn http_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn local_relay(beacon: Arc<LocalBeacon>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(beacon, listener));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_client_against_good_and_faulty_relays() {
    let beacon = Arc::new(LocalBeacon::from_seed(&[9; 32], unix_now() - 1000, 1));
    let info = beacon.info().clone();
    let round = 500;
    let expected = beacon.beacon(round).await.unwrap();
    let good = local_relay(beacon.clone()).await;
    let client = |relays: Vec<String>| {
        DrandClient::new(info.clone(), relays, Duration::from_millis(500)).unwrap()
    };

    // The served beacon is fetched and verified.
    assert_eq!(
        client(vec![good.clone()]).beacon(round).await.unwrap(),
        expected
    );

    let impostor = LocalBeacon::from_seed(&[10; 32], info.genesis_time, 1);
    let faults = [
        (
            "garbage",
            fake_relay(http_ok("<html>not json</html>"), Duration::ZERO).await,
        ),
        (
            "wrong round",
            fake_relay(
                http_ok(&serde_json::to_string(&beacon.sign(round + 1)).unwrap()),
                Duration::ZERO,
            )
            .await,
        ),
        (
            "bad signature",
            fake_relay(
                http_ok(&serde_json::to_string(&impostor.sign(round)).unwrap()),
                Duration::ZERO,
            )
            .await,
        ),
        (
            "server error",
            fake_relay(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".into(),
                Duration::ZERO,
            )
            .await,
        ),
        (
            "timeout",
            fake_relay(http_ok("{}"), Duration::from_secs(5)).await,
        ),
    ];
    for (name, relay) in &faults {
        let err = client(vec![relay.clone()]).beacon(round).await.unwrap_err();
        let DrandError::AllRelaysFailed { failures, .. } = &err else {
            panic!("{name}: {err}")
        };
        let ok = match *name {
            "garbage" => matches!(failures[0], DrandError::MalformedJson { .. }),
            "wrong round" => matches!(
                failures[0],
                DrandError::WrongRound {
                    expected: 500,
                    got: 501
                }
            ),
            "bad signature" => matches!(failures[0], DrandError::BadSignature { .. }),
            "server error" => {
                matches!(&failures[0], DrandError::Http { detail, .. } if detail.contains("503"))
            }
            "timeout" => matches!(failures[0], DrandError::Timeout { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{name}: {err}");
    }

    // Nothing listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    match client(vec![closed.clone()]).beacon(round).await {
        Err(DrandError::AllRelaysFailed { failures, .. }) => {
            // The connection error is kept as the source, not flattened into text.
            assert!(
                matches!(&failures[0], DrandError::Request { .. }),
                "{failures:?}"
            );
            assert!(std::error::Error::source(&failures[0]).is_some());
        }
        other => panic!("{other:?}"),
    }

    // Failover: bad relays first, then a good one.
    let mut relays: Vec<String> = faults.iter().map(|(_, r)| r.clone()).collect();
    relays.push(closed);
    relays.push(good);
    assert_eq!(client(relays).beacon(round).await.unwrap(), expected);

    // Every relay bad: one failure per relay, in order.
    let all_bad: Vec<String> = faults.iter().map(|(_, r)| r.clone()).collect();
    match client(all_bad).beacon(round).await {
        Err(DrandError::AllRelaysFailed { failures, .. }) => {
            assert_eq!(failures.len(), faults.len())
        }
        other => panic!("{other:?}"),
    }
}
