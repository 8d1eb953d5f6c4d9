"""schemathesis against the served /openapi.json: every check, a bounded number of
examples, loopback only, and it must find nothing.

Runs the coverage, fuzzing and stateful phases (the examples phase has nothing to use: the
document has no examples) with a fixed seed, so a failure reproduces. A request that
streams the events of a run still waiting (GET /runs/{run_id}/events) never ends on its
own; ``--request-timeout`` bounds it, and schemathesis counts the cut stream as fine.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_serve import key_of, shop_server  # noqa: F401  (the shared server fixture)

pytest.importorskip("schemathesis")


def test_schemathesis_finds_nothing(shop_server, tmp_path):  # noqa: F811
    cmd = [sys.executable, "-m", "schemathesis.cli", "run",
           f"{shop_server.url}/openapi.json",
           "--checks", "all",
           "--max-examples", "10",
           "--seed", "1",
           "--workers", "2",
           "--request-timeout", "1",
           "--phases", "examples,coverage,fuzzing,stateful",
           "--generation-database", "none",
           "-H", f"Authorization: Bearer {key_of('admin')}",
           "--no-color"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                       stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "failed" not in out.split("SUMMARY")[-1].lower() or " 0 failed" in out, out[-3000:]
    assert "Tested: 10" in out  # every operation of the document
