"""Regenerates bittensor_calls.json: call data from the Python `bittensor` SDK (PyPI) for
set_weights and set_commitment, encoded against the recorded subtensor metadata.

Run by `cargo xtask chain-vectors` (which installs the SDK into a cache venv):
    python make_vectors.py METADATA.scale OUT.json
"""

import json
import sys
from importlib.metadata import version

from bittensor._transport.codec import RuntimeCodec
from bittensor.intents.weights import normalize

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

json.dump(
    {
        "generator": f"bittensor {version('bittensor')} (PyPI), RuntimeCodec.compose_call",
        "metadata": "subtensor-metadata-2024-09.scale",
        "set_weights": weights,
        "set_commitment": commitments,
    },
    open(out_path, "w"),
    indent=1,
)
print(f"wrote {len(weights)} set_weights and {len(commitments)} set_commitment vectors")
