"""`kflow mcp FILE...`: the same tools over stdio, with the `mcp` client.

Runs are shared with the CLI: a run the agent leaves waiting is answered with
`kflow signal` and followed with get_run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
from test_serve import SHOP

from kailash_dsl.serve.testing import write_files

pytest.importorskip("mcp")


def _params(folder, db):
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "kailash_dsl", "mcp", "shop.kflow", "--db",
                                       str(db), "--block-for", "200ms"],
                                 cwd=str(folder))


def test_stdio_tools_calls_and_shared_runs(tmp_path):
    from mcp import Client

    from kailash_dsl.emit import emit_text

    folder = write_files(tmp_path, {"shop.kflow": SHOP})
    db = tmp_path / "runs.db"
    emitted = json.loads(emit_text("mcp", [str(folder / "shop.kflow")]))["tools"]

    async def go():
        async with Client(_params(folder, db)) as c:
            tools = (await c.list_tools()).tools
            ok = await c.call_tool("squares", {"n": 5})
            bad = await c.call_tool("squares", {"n": True})
            restock = await c.call_tool("restock", {"sku": "s", "qty": 3})  # no roles here
            waiting = await c.call_tool("approve", {"amount": 1.0})
            rid = waiting.structured_content["run_id"]
            # answer the wait from another channel: the CLI, on the same journal
            cmd = [sys.executable, "-m", "kailash_dsl", "signal", rid, "approval",
                   "--data", '{"approved": true, "by": "cli"}', "--db", str(db)]
            out = await anyio.to_thread.run_sync(lambda: subprocess.run(
                cmd, capture_output=True, text=True, cwd=folder, timeout=60, check=False))
            assert out.returncode == 0, out.stderr
            done = await c.call_tool("get_run", {"run_id": rid, "wait_seconds": 15})
            return tools, ok, bad, restock, waiting, done

    tools, ok, bad, restock, waiting, done = anyio.run(go)
    listed = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
    for t in listed:
        t.pop("_meta", None)
    assert listed[:-2] == emitted
    assert [t["name"] for t in listed[-2:]] == ["get_run", "signal_run"]
    assert ok.structured_content == {"total": 30, "greeting": "hello world"}
    assert bad.is_error and bad.structured_content["errors"][0]["field"] == "n"
    assert restock.structured_content == {"sku": "s", "qty": 3}
    assert waiting.is_error and waiting.structured_content["status"] == "waiting"
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["output"] == {"approved": True, "by": "cli"}
    # and the CLI sees what the agent ran
    shown = subprocess.run([sys.executable, "-m", "kailash_dsl", "runs", "--db", str(db),
                            "--format", "json"], capture_output=True, text=True, cwd=folder,
                           timeout=60)
    assert shown.returncode == 0 and rid_in(shown.stdout, waiting.structured_content)


def rid_in(text: str, view: dict) -> bool:
    return view["run_id"] in text


def test_stdio_refuses_a_bad_file_clearly(tmp_path):
    (tmp_path / "bad.kflow").write_text("module m\nworkflow W() -> int { return \"x\" }\n")
    r = subprocess.run([sys.executable, "-m", "kailash_dsl", "mcp", "bad.kflow"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stdout == ""  # stdout is the protocol channel: nothing else goes there
    assert "error" in r.stderr
