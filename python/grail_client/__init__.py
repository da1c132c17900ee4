"""Client of grail's v2 job API (docs/jobs.md), standard library only.

    from grail_client import Client
    c = Client("http://validator:8091", key)
    job_id = c.submit(job)                  # a dict in the POST /v2/jobs form
    for group in c.groups(job_id):          # whole verified groups as they are sealed
        ...                                 # each a list of rollout dicts

`pip install ./python` from the repository installs it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["Client", "GatewayError"]


class GatewayError(Exception):
    """The gateway refused a request: its HTTP status, message and the field at fault."""

    def __init__(self, status: int, message: str, field: Optional[str] = None):
        super().__init__(f"{status}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.message = message
        self.field = field


class Client:
    """One gateway (a validator's API) and an API key."""

    def __init__(self, gateway: str, key: str, timeout: float = 60.0):
        self.gateway = gateway.rstrip("/")
        self._key = key.strip()
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Optional[bytes] = None) -> Tuple[bytes, Dict[str, str]]:
        req = urllib.request.Request(self.gateway + path, data=body, method=method)
        req.add_header("Authorization", "Bearer " + self._key)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read() or b"{}")
            except ValueError:
                err = {}
            raise GatewayError(e.code, err.get("error", e.reason), err.get("field")) from None

    def submit(self, job: Dict[str, Any]) -> str:
        """Submits a job (the POST /v2/jobs document); returns its id."""
        body, _ = self._request("POST", "/v2/jobs", json.dumps(job).encode())
        return json.loads(body)["id"]

    def status(self, job_id: str) -> Dict[str, Any]:
        """The job's status (GET /v2/jobs/{id})."""
        body, _ = self._request("GET", f"/v2/jobs/{job_id}")
        return json.loads(body)

    def job(self, job_id: str) -> Dict[str, Any]:
        """The job's canonical document (GET /v2/jobs/{id}/job): prompts, reward, group size,
        max new tokens, `temperature_milli`, deadline."""
        body, _ = self._request("GET", f"/v2/jobs/{job_id}/job")
        return json.loads(body)

    def rollouts(self, job_id: str, cursor: int = 0, limit: int = 1000, wait: int = 0) -> Tuple[List[Dict[str, Any]], int]:
        """Up to `limit` rollouts from `cursor` (waiting up to `wait` s for the first), and
        the cursor to ask next."""
        body, headers = self._request(
            "GET", f"/v2/jobs/{job_id}/rollouts?cursor={cursor}&limit={limit}&wait={wait}"
        )
        rows = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        return rows, int(headers["x-next-cursor"])

    def follow(self, job_id: str, cursor: int = 0, until_done: bool = True) -> Iterator[Dict[str, Any]]:
        """Every rollout from `cursor` as it is delivered; ends when the job is complete or
        expired and everything was read (or, with `until_done=False`, when nothing new is
        there). A gateway that stops answering is retried five times with back-off."""
        failures = 0
        while True:
            try:
                rows, cursor_next = self.rollouts(job_id, cursor, 1000, 10 if until_done else 0)
                status = self.status(job_id)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                failures += 1
                if failures > 5:
                    raise
                time.sleep(2 ** failures)
                continue
            failures = 0
            yield from rows
            cursor = cursor_next
            if not rows and (not until_done or (status["state"] != "open" and cursor >= status["rollouts_delivered"])):
                return

    def groups(self, job_id: str, cursor: int = 0, until_done: bool = True) -> Iterator[List[Dict[str, Any]]]:
        """Whole groups (a group's rollouts come with consecutive cursors), in stream order,
        each yielded as soon as its last rollout arrives."""
        group_size = int(self.job(job_id)["group_size"])
        current: List[Dict[str, Any]] = []
        for r in self.follow(job_id, cursor, until_done):
            if current and r["group"] != current[0]["group"]:
                raise GatewayError(0, f"group {current[0]['group']} ended after {len(current)} of {group_size} rollouts")
            current.append(r)
            if len(current) == group_size:
                yield current
                current = []
        if current:
            raise GatewayError(0, f"the stream ended inside group {current[0]['group']}")
