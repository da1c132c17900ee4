"""Regenerates bittensor_calls.json: what the Python `bittensor` SDK (PyPI) produces for the
recorded subtensor metadata: call data for set_weights, set_commitment, serve_axon (the SDK's
ServeAxon intent), commit_weights / reveal_weights (the reveal through the SDK's RevealWeights
intent; the commit hash is BLAKE2b-256 of the SDK codec's SCALE encoding of
(hotkey, netuid, uids, values, salt, version_key), the preimage Subtensor hashes), storage
keys and values, and the signature payload of a signed extrinsic.

Run by `cargo xtask chain-vectors` (which installs the SDK into a cache venv):
    python make_vectors.py METADATA.scale OUT.json
"""

import asyncio
import hashlib
import json
import sys
from importlib.metadata import version

from bittensor._transport.codec import RuntimeCodec
from bittensor.intents.serving import ServeAxon
from bittensor.intents.weights import RevealWeights, normalize

metadata_path, out_path = sys.argv[1], sys.argv[2]
codec = RuntimeCodec(open(metadata_path, "rb").read(), spec_version=1, transaction_version=1)

weight_cases = [
    (81, [0, 1, 5], [0.2, 0.5, 0.3], 0),
    (81, [0, 3, 4, 9], [1.0, 0.0, 2.5, 0.5], 7),
    (1, [10, 11], [1.0, 1.0], 2),
    (81, [2, 7, 8], [1.0, 3.0, 0.5], 1),  # 0.5 * 65535 / 3 = 10922.5: rounding
    (81, [0, 1], [1e-9, 1.0], 0),  # a weight that quantises to zero is dropped
    (81, [4, 2], [0.0, 0.0], 0),  # all zero: empty lists
    (65535, list(range(300)), [float((i * 37) % 101) for i in range(300)], 2**40 + 3),
]
weights = []
for netuid, uids, ws, version_key in weight_cases:
    out_uids, out_vals = normalize(uids, ws)
    call = codec.compose_call(
        "SubtensorModule",
        "set_weights",
        {"netuid": netuid, "dests": out_uids, "weights": out_vals, "version_key": version_key},
    )
    weights.append(
        {
            "netuid": netuid,
            "uids": uids,
            "weights": ws,
            "version_key": version_key,
            "emitted_uids": out_uids,
            "emitted_weights": out_vals,
            "call_data": codec.call_data(call).hex(),
        }
    )

commitment_cases = [
    (81, [b"abcd"]),
    (81, [b"a" * 32 + b"k" * 32 + b"s" * 64]),  # the 128-character read credentials
    (81, [b"grail-ckpt:v1:3:" + b"f" * 64, b"x" * 100]),
    (2, [b""]),
]
commitments = []
for netuid, fields in commitment_cases:
    info = {"fields": [{f"Raw{len(f)}": "0x" + f.hex()} for f in fields]}
    call = codec.compose_call("Commitments", "set_commitment", {"netuid": netuid, "info": info})
    commitments.append(
        {
            "netuid": netuid,
            "fields_hex": [f.hex() for f in fields],
            "call_data": codec.call_data(call).hex(),
        }
    )



class Compose:
    """The substrate seam the SDK's intents build calls through."""

    async def compose(self, call):
        return codec.compose_call(call.module, call.function, call.params)


def build(intent):
    return codec.call_data(asyncio.run(intent.build(Compose(), None))).hex()


axon_cases = [
    (81, "203.0.113.7", 8080, 4, 3),
    (81, "2001:db8::1", 443, 4, 3),
    (1, "10.0.0.1", 65535, 4, 0),
    (81, "255.255.255.254", 1, 4, 4294967295),
]
axons = [
    {
        "netuid": netuid,
        "ip": ip,
        "port": port,
        "protocol": protocol,
        "version": ver,
        "call_data": build(
            ServeAxon(netuid=netuid, ip=ip, port=port, protocol=protocol, version=ver)
        ),
    }
    for netuid, ip, port, protocol, ver in axon_cases
]

HOTKEY = "01" * 32
commit_cases = [
    (81, HOTKEY, [1, 2], [65535, 10], [7, 8, 9], 3),
    (81, "d4" * 32, [0, 4, 9], [65535, 13107, 26214], [0] * 8, 0),
    (1, HOTKEY, [300], [65535], list(range(65528, 65536)), 2**40 + 3),
]
commit_reveal = []
for netuid, hotkey, uids, values, salt, version_key in commit_cases:
    preimage = codec.encode(
        "(AccountId32, u16, Vec<u16>, Vec<u16>, Vec<u16>, u64)",
        ["0x" + hotkey, netuid, uids, values, salt, version_key],
    )
    commit_hash = hashlib.blake2b(preimage, digest_size=32).digest()
    commit = codec.compose_call(
        "SubtensorModule", "commit_weights", {"netuid": netuid, "commit_hash": "0x" + commit_hash.hex()}
    )
    reveal = RevealWeights(
        netuid=netuid, uids=uids, weights=[float(v) for v in values], salt=salt, version_key=version_key
    )
    commit_reveal.append(
        {
            "netuid": netuid,
            "hotkey": hotkey,
            "uids": uids,
            "values": values,
            "salt": salt,
            "version_key": version_key,
            "commit_hash": commit_hash.hex(),
            "commit_call_data": codec.call_data(commit).hex(),
            "reveal_call_data": build(reveal),
        }
    )

# Storage keys: params as [["u16", 81], ["account", hex]], the key from the SDK codec.
ACCOUNT = "d4" * 32
key_cases = [
    ("SubtensorModule", "Axons", [["u16", 81]]),
    ("SubtensorModule", "Axons", [["u16", 81], ["account", ACCOUNT]]),
    ("SubtensorModule", "Keys", [["u16", 81]]),
    ("SubtensorModule", "Keys", [["u16", 81], ["u16", 5]]),
    ("SubtensorModule", "ValidatorPermit", [["u16", 81]]),
    ("SubtensorModule", "TotalHotkeyStake", [["account", ACCOUNT]]),
    ("SubtensorModule", "CommitRevealWeightsEnabled", [["u16", 81]]),
    ("SubtensorModule", "WeightsVersionKey", [["u16", 81]]),
    ("SubtensorModule", "WeightCommitRevealInterval", [["u16", 81]]),
    ("SubtensorModule", "WeightCommits", [["u16", 81], ["account", ACCOUNT]]),
    ("SubtensorModule", "Weights", [["u16", 81], ["u16", 3]]),
    ("Commitments", "CommitmentOf", [["u16", 81]]),
    ("Commitments", "CommitmentOf", [["u16", 81], ["account", ACCOUNT]]),
    ("Timestamp", "Now", []),
]
storage_keys = []
for pallet, entry, params in key_cases:
    sdk_params = [("0x" + v) if t == "account" else v for t, v in params]
    key = codec.storage_key(codec.storage_entry(pallet, entry), sdk_params)
    storage_keys.append({"pallet": pallet, "entry": entry, "params": params, "key": key.hex()})

# Storage values as the runtime stores them (SDK codec), for the decoders.
AXON = {"block": 5, "version": 3, "ip": 0xCB007107, "port": 8080, "ip_type": 4, "protocol": 4,
        "placeholder1": 0, "placeholder2": 0}
value_cases = [
    ("SubtensorModule", "Axons", AXON),
    ("SubtensorModule", "Axons", dict(AXON, ip=0x20010DB8000000000000000000000001, ip_type=6, port=443)),
    ("SubtensorModule", "Axons", dict(AXON, ip=0, port=1, version=0)),  # reset_axon's placeholder
    ("Commitments", "CommitmentOf", {"deposit": 5, "block": 77, "info": {"fields": [{"Raw5": "0x68656c6c6f"}]}}),
    ("SubtensorModule", "WeightCommits", ["0x" + "ab" * 32, 1234]),
    ("SubtensorModule", "ValidatorPermit", [True, False, True]),
    ("SubtensorModule", "TotalHotkeyStake", 123456789012),
    ("SubtensorModule", "Keys", "0x" + ACCOUNT),
    ("SubtensorModule", "Weights", [[0, 65535], [7, 12]]),
    ("SubtensorModule", "CommitRevealWeightsEnabled", True),
    ("SubtensorModule", "WeightsVersionKey", 3),
]
storage_values = []
for pallet, entry, value in value_cases:
    entry_info = codec.storage_entry(pallet, entry)
    storage_values.append(
        {"pallet": pallet, "entry": entry, "value": value, "bytes": codec.encode(entry_info.value_type, value).hex()}
    )

# The bytes a signer signs: nonce 7, immortal, no tip, the genesis hash of finney.
GENESIS = "0x2f0555cc76fc2840a25a6ea3b9637146806f1f44b090c175ffde2a7e5ab36c03"
signer_payloads = []
for call_hex in [weights[0]["call_data"], axons[0]["call_data"], commitments[1]["call_data"]]:
    payload = codec.signature_payload(
        bytes.fromhex(call_hex), era="00", nonce=7, tip=0, tip_asset_id=None,
        genesis_hash=GENESIS, era_block_hash=GENESIS,
    )
    signer_payloads.append(
        {"call_data": call_hex, "nonce": 7, "genesis_hash": GENESIS[2:], "payload": payload.hex()}
    )

json.dump(
    {
        "generator": f"bittensor {version('bittensor')} (PyPI), RuntimeCodec and intents",
        "metadata": "subtensor-metadata-2024-09.scale",
        "signed_extensions": codec.signed_extension_identifiers(),
        "set_weights": weights,
        "set_commitment": commitments,
        "serve_axon": axons,
        "commit_reveal": commit_reveal,
        "storage_keys": storage_keys,
        "storage_values": storage_values,
        "signer_payloads": signer_payloads,
    },
    open(out_path, "w"),
    indent=1,
)
print(
    f"wrote {len(weights)} set_weights, {len(commitments)} set_commitment, {len(axons)} serve_axon, "
    f"{len(commit_reveal)} commit-reveal, {len(storage_keys)} storage-key, {len(storage_values)} "
    f"storage-value and {len(signer_payloads)} signer-payload vectors"
)
