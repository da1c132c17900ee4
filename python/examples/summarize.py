"""Reads a job's delivered groups with the Python client and prints a JSON summary:
`python summarize.py GATEWAY KEY_FILE JOB_ID` (the end-to-end test compares it with what
the Rust client received)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from grail_client import Client, GatewayError  # noqa: E402


def main() -> None:
    gateway, key_file, job_id = sys.argv[1:4]
    with open(key_file) as f:
        client = Client(gateway, f.readline())
    groups = list(client.groups(job_id, until_done=False))
    try:
        client.status("0" * 64)
        missing = None
    except GatewayError as e:
        missing = e.status
    print(json.dumps({
        "groups": len(groups),
        "rollouts": sum(len(g) for g in groups),
        "group_sizes": sorted({len(g) for g in groups}),
        "cursors": [r["cursor"] for g in groups for r in g],
        "mean_advantage_per_group": [round(sum(r["advantage"] for r in g), 9) for g in groups],
        "unknown_job_status": missing,
    }))


if __name__ == "__main__":
    main()
