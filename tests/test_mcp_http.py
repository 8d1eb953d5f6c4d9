"""MCP on `kflow serve` at /mcp (streamable HTTP, stateless, JSON), with the `mcp` client.

The listed tools are `kflow emit mcp`'s plus get_run and signal_run; a call answers the
structuredContent of the output schema; bad arguments are a tool error naming the field;
a waiting run answers its run id; auth, roles and the rate limit are the REST ones.
"""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from test_serve import auth, shop_server  # noqa: F401  (the shared server fixture)

pytest.importorskip("mcp")


def _client(url: str, key: str | None, mode: str = "auto"):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = auth(key) if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode), http


async def _with_client(url, key, fn, mode="auto"):
    client, http = _client(url, key, mode)
    async with http, client as c:
        return await fn(c)


def run(coro_fn):
    return anyio.run(coro_fn)


def _tool_dict(t) -> dict:
    d = t.model_dump(by_alias=True, exclude_none=True, mode="json")
    d.pop("_meta", None)
    return d


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_listed_tools_are_the_emitted_ones(shop_server, mode):  # noqa: F811
    from kailash_dsl.emit import emit_text

    emitted = json.loads(emit_text("mcp", [str(shop_server.folder / "shop.kflow")]))["tools"]

    async def go():
        async def body(c):
            return (await c.list_tools()).tools
        return await _with_client(shop_server.url, "admin", body, mode)

    tools = run(go)
    listed = [_tool_dict(t) for t in tools]
    assert [t["name"] for t in listed] == [t["name"] for t in emitted] + ["get_run",
                                                                         "signal_run"]
    for got, want in zip(listed, emitted):
        assert got == want


def test_call_returns_structured_content(shop_server):  # noqa: F811
    async def go():
        async def body(c):
            squares = await c.call_tool("squares", {"n": 3, "name": "bo"})
            words = await c.call_tool("count_words", {"text": "one two"})
            cust = await c.call_tool("get_customer", {"id": "none"})
            return squares, words, cust
        return await _with_client(shop_server.url, "admin", body)

    squares, words, cust = run(go)
    assert not squares.is_error
    assert squares.structured_content == {"total": 5, "greeting": "hello bo"}
    assert json.loads(squares.content[0].text) == squares.structured_content
    assert squares.meta["kflow/status"] == "completed"
    rid = squares.meta["kflow/run_id"]
    # the run is in the shared journal: REST sees it
    got = httpx.get(f"{shop_server.url}/runs/{rid}", headers=auth("admin")).json()
    assert got["output"] == squares.structured_content
    assert words.structured_content == {"result": 2}  # not a record: wrapped
    assert cust.structured_content == {"result": None}


def test_bad_arguments_are_a_tool_error_naming_the_field(shop_server):  # noqa: F811
    async def go():
        async def body(c):
            return [await c.call_tool("squares", {"n": "three"}),
                    await c.call_tool("squares", {"m": 1, "n": 1}),
                    await c.call_tool("squares", {}),
                    await c.call_tool("no_such_tool", {}),
                    await c.call_tool("get_run", {"run_id": 7}),
                    await c.call_tool("broken", {"reason": "x"})]
        return await _with_client(shop_server.url, "admin", body)

    wrong_type, unknown, missing, no_tool, bad_id, failed = run(go)
    assert wrong_type.is_error and "`n`" in wrong_type.content[0].text
    assert wrong_type.structured_content["errors"][0]["field"] == "n"
    assert unknown.is_error and "`m`" in unknown.content[0].text
    assert missing.is_error and "`n` is missing" in missing.content[0].text
    assert no_tool.is_error and "no tool named" in no_tool.content[0].text
    assert bad_id.is_error and "run_id" in bad_id.content[0].text
    assert failed.is_error and failed.structured_content["status"] == "failed"
    assert "broken: x" in failed.content[0].text


def test_waiting_run_answers_its_id_then_signal_and_get(shop_server):  # noqa: F811
    async def go():
        async def body(c):
            first = await c.call_tool("approve", {"amount": 3.0})
            rid = first.structured_content["run_id"]
            bad = await c.call_tool("signal_run", {"run_id": rid, "name": "approval",
                                                   "data": {"approved": 1}})
            sig = await c.call_tool("signal_run", {"run_id": rid, "name": "approval",
                                                   "data": {"approved": True, "by": "ai"}})
            got = await c.call_tool("get_run", {"run_id": rid, "wait_seconds": 10})
            late = await c.call_tool("signal_run", {"run_id": rid, "name": "approval",
                                                    "data": {"approved": True, "by": "x"}})
            return first, bad, sig, got, late
        return await _with_client(shop_server.url, "admin", body)

    first, bad, sig, got, late = run(go)
    assert first.structured_content["status"] == "waiting"
    assert "signal_run" in first.content[0].text
    assert bad.is_error and bad.structured_content["errors"][0]["field"] == "data.approved"
    assert not sig.is_error and sig.structured_content["signal"] == "approval"
    assert not got.is_error and got.structured_content["status"] == "completed"
    assert got.structured_content["output"] == {"approved": True, "by": "ai"}
    assert late.is_error and "completed" in late.content[0].text


def test_get_run_follows_a_rest_run(shop_server):  # noqa: F811
    rid = httpx.post(shop_server.url + "/workflows/Squares", json={"n": 2},
                     headers=auth("admin")).json()["run_id"]

    async def go():
        async def body(c):
            return await c.call_tool("get_run", {"run_id": rid})
        return await _with_client(shop_server.url, "viewer", body)

    got = run(go)
    assert got.structured_content["output"] == {"total": 1, "greeting": "hello world"}


def test_mcp_auth_and_roles(shop_server):  # noqa: F811
    # no key: the HTTP request is refused before MCP sees it
    r = httpx.post(shop_server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                   "method": "tools/list"},
                   headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")

    async def go():
        async def body(c):
            tools = [t.name for t in (await c.list_tools()).tools]
            call = await c.call_tool("restock", {"sku": "a", "qty": 1})
            return tools, call
        viewer = await _with_client(shop_server.url, "viewer", body)
        ops = await _with_client(shop_server.url, "ops", body)
        return viewer, ops

    (v_tools, v_call), (o_tools, o_call) = run(go)
    assert "restock" not in v_tools and "squares" in v_tools
    assert v_call.is_error and "forbidden" in v_call.content[0].text
    assert "restock" in o_tools
    assert not o_call.is_error and o_call.structured_content == {"sku": "a", "qty": 1}
