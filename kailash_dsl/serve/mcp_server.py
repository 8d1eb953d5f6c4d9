"""MCP for the served workflows: the ``mcp`` package's low-level server.

The tools are the ``tools`` of ``kflow emit mcp`` for the same files (one per workflow), plus
``get_run`` and ``signal_run`` to follow and answer a run started on any channel (runs are
shared through the journal). A tool call:

- checks the arguments against the workflow's parameters; a mismatch is a tool error
  (``isError``) that names the field — never a protocol error or a crash;
- runs the workflow durably (the same engine as REST) and answers ``structuredContent``
  matching the tool's ``outputSchema`` (``{"result": value}`` when the result is not a
  record, as ``kflow emit mcp`` documents);
- a failed run is a tool error carrying ``{run_id, status: "failed", error}``;
- a run that waits (signal or timer) answers its run id and status — as a tool error,
  because a result without the output can not match the output schema; the text tells
  the agent to answer it with ``signal_run`` and follow it with ``get_run``.

Every workflow result carries ``_meta["kflow/run_id"]`` and ``_meta["kflow/status"]``.
Over HTTP (``/mcp``) the transport is streamable HTTP, stateless, with JSON responses; the
caller is the API key the :class:`~kailash_dsl.serve.app.Gate` authenticated, so roles and
the rate limit are the REST ones. Over stdio (``kflow mcp FILE...``) the caller is the
local user: every tool is available.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .auth import STDIO, Principal
from .engine import Engine, RunFinished, RunNotFound, run_view
from .metrics import Metrics
from .registry import BUILTIN_TOOLS, InputError, Registry, check_input

log = logging.getLogger("kflow.serve")

_RUN_STATUS = ["running", "waiting", "completed", "failed", "cancelled"]
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"kind": {"type": "string"}, "message": {"type": "string"},
                   "step": {"type": "string"}},
    "required": ["kind", "message", "step"],
}
#: what get_run and signal_run both answer about a run
_RUN_PROPS = {"run_id": {"type": "string"}, "workflow": {"type": "string"},
              "status": {"type": "string", "enum": _RUN_STATUS}}

GET_RUN = {
    "name": "get_run",
    "title": "Get Run",
    "description": "Follow a kflow run started on any channel (REST, MCP or the CLI): its "
                   "status, and its output or error once it finished. With `wait_seconds`, "
                   "wait up to that long for it to finish first.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "description": "The run's id."},
            "wait_seconds": {"type": "number", "minimum": 0, "maximum": 60, "default": 0,
                             "description": "Wait up to this long for the run to finish."},
        },
        "required": ["run_id"],
        "additionalProperties": False,
    },
    "outputSchema": {
        "type": "object",
        "properties": {
            **_RUN_PROPS,
            "output": {"description": "The workflow's result once the run completed."},
            "error": {"anyOf": [_ERROR_SCHEMA, {"type": "null"}]},
            "wake_at": {"type": "number",
                        "description": "When a waiting run's timer or deadline is due "
                                       "(seconds since the epoch)."},
        },
        "required": ["run_id", "workflow", "status", "output", "error"],
    },
    "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True,
                    "openWorldHint": False},
}

SIGNAL_RUN = {
    "name": "signal_run",
    "title": "Signal Run",
    "description": "Send the signal `name` to a waiting kflow run; its `wait \"name\"` "
                   "resumes with `data` as the payload (checked against the wait's type). "
                   "Follow the run with get_run.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "description": "The run's id."},
            "name": {"type": "string", "description": "The signal the run waits for."},
            "data": {"description": "The signal's payload (any JSON)."},
        },
        "required": ["run_id", "name"],
        "additionalProperties": False,
    },
    "outputSchema": {
        "type": "object",
        "properties": {
            **_RUN_PROPS,
            "signal": {"type": "string"},
        },
        "required": ["run_id", "workflow", "status", "signal"],
    },
    "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False,
                    "openWorldHint": False},
}


def all_tools(registry: Registry) -> list[dict]:
    """Every tool a server lists: the emitted ones, then get_run and signal_run."""
    return [*registry.tools, GET_RUN, SIGNAL_RUN]


def _principal_of(ctx) -> Principal:
    req = getattr(ctx, "request", None)
    scope = getattr(req, "scope", None)
    if isinstance(scope, dict):
        p = scope.get("kflow.principal")
        if p is not None:
            return p
        return Principal("anonymous", all_access=True)
    return STDIO


class ToolCalls:
    """What the tools do, independent of the transport (and testable without one)."""

    def __init__(self, registry: Registry, engine: Engine, metrics: Metrics) -> None:
        self.registry = registry
        self.engine = engine
        self.metrics = metrics

    def visible(self, principal: Principal) -> list[dict]:
        out = []
        for t in all_tools(self.registry):
            e = self.registry.by_tool.get(t["name"])
            if e is None or principal.may(e.roles):
                out.append(t)
        return out

    async def call(self, principal: Principal, name: str, args: dict | None) -> dict:
        """The ``tools/call`` result as a JSON-able dict (content, structuredContent...)."""
        args = {} if args is None else args
        try:
            if name == "get_run":
                res = await self._get_run(principal, args)
            elif name == "signal_run":
                res = await self._signal_run(principal, args)
            else:
                res = await self._workflow(principal, name, args)
        except Exception as exc:  # never crash the session: say what went wrong
            log.exception("tool %s failed", name)
            res = _error(f"internal error in `{name}`: {type(exc).__name__}: {exc}")
        self.metrics.tool_calls.inc(name if (name in BUILTIN_TOOLS or
                                             name in self.registry.by_tool) else "(unknown)",
                                    "error" if res.get("isError") else "ok")
        return res

    async def _workflow(self, principal: Principal, name: str, args: Any) -> dict:
        e = self.registry.by_tool.get(name)
        if e is None:
            names = [t["name"] for t in self.visible(principal)]
            return _error(f"no tool named `{name}` (tools: {', '.join(names)})")
        if not principal.may(e.roles):
            return _error(f"forbidden: `{name}` needs one of the roles "
                          f"{', '.join(e.roles)}; the key `{principal.name}` has "
                          f"{', '.join(sorted(principal.roles)) or 'none'}")
        try:
            values = check_input(e.rwf, args)
        except InputError as exc:
            return _error(f"invalid arguments: {exc.message}",
                          {"errors": exc.errors})
        result = await self.engine.start(e, values, args, channel="mcp")
        if result is None:  # pragma: no cover
            return _error("the run could not be driven here")
        meta = {"kflow/run_id": result["run_id"], "kflow/status": result["status"]}
        status = result["status"]
        if status == "completed":
            out = result["output"]
            structured = {"result": out} if e.wrapped else out
            return {"content": [{"type": "text", "text": json.dumps(structured,
                                                                     ensure_ascii=False)}],
                    "structuredContent": structured, "isError": False, "_meta": meta}
        if status in ("waiting", "running"):
            why = result.get("waiting_for") or "a signal or a timer"
            view = {"run_id": result["run_id"], "status": status}
            if result.get("waiting_for"):
                view["waiting_for"] = result["waiting_for"]
            text = (f"The run {result['run_id']} of {e.name} is {status} ({why}); it has no "
                    f"result yet. It continues durably on the server: answer a wait with "
                    f"the signal_run tool (run_id \"{result['run_id']}\"), and follow it "
                    f"with get_run (wait_seconds up to 60).")
            return {"content": [{"type": "text", "text": text}], "structuredContent": view,
                    "isError": True, "_meta": meta}
        err = result.get("error") or {}
        step = f" at step `{err.get('step')}`" if err.get("step") else ""
        text = (f"The run {result['run_id']} of {e.name} {status}{step}: "
                f"{err.get('kind', 'Error')}: {err.get('message', '')}")
        return {"content": [{"type": "text", "text": text}],
                "structuredContent": {"run_id": result["run_id"], "status": status,
                                      "error": err},
                "isError": True, "_meta": meta}

    async def _find(self, principal: Principal, args: Any, schema: dict):
        if not isinstance(args, dict):
            return None, _error("the arguments must be an object")
        allowed = set(schema["inputSchema"]["properties"])
        for k in args:
            if k not in allowed:
                return None, _error(f"invalid arguments: `{k}` is not an argument of "
                                    f"`{schema['name']}` (it takes {', '.join(allowed)})")
        rid = args.get("run_id")
        if not isinstance(rid, str) or not rid:
            return None, _error("invalid arguments: `run_id` is missing or not a string")
        rec = await self.engine.get(rid)
        if rec is None:
            return None, _error(f"no run `{rid}`")
        roles = self.registry.roles_for_run(rec.workflow)
        ok = principal.may(roles) if roles is not None else (principal.all_access or
                                                             "*" in principal.roles)
        if not ok:
            return None, _error(f"forbidden: the key `{principal.name}` may not see runs of "
                                f"`{rec.workflow}`")
        return rec, None

    async def _get_run(self, principal: Principal, args: Any) -> dict:
        rec, err = await self._find(principal, args, GET_RUN)
        if err is not None:
            return err
        wait = args.get("wait_seconds", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 60:
            return _error("invalid arguments: `wait_seconds` must be a number from 0 to 60")
        if wait > 0:
            rec = await self.engine.wait_for(rec.run_id, float(wait)) or rec
        view = run_view(rec)
        return {"content": [{"type": "text", "text": json.dumps(view, ensure_ascii=False)}],
                "structuredContent": view, "isError": False}

    async def _signal_run(self, principal: Principal, args: Any) -> dict:
        rec, err = await self._find(principal, args, SIGNAL_RUN)
        if err is not None:
            return err
        name = args.get("name")
        if not isinstance(name, str) or not name:
            return _error("invalid arguments: `name` is missing or not a string")
        try:
            rec = await self.engine.signal(rec.run_id, name, args.get("data"))
        except RunNotFound:
            return _error(f"no run `{args['run_id']}`")
        except RunFinished as exc:
            return _error(str(exc))
        except InputError as exc:
            return _error(exc.message, {"errors": exc.errors})
        view = {"run_id": rec.run_id, "workflow": rec.workflow, "status": rec.status,
                "signal": name}
        return {"content": [{"type": "text", "text": f"Signal `{name}` delivered to run "
                                                      f"{rec.run_id} ({rec.status})."}],
                "structuredContent": view, "isError": False}


def _error(text: str, structured: dict | None = None) -> dict:
    out: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if structured is not None:
        out["structuredContent"] = structured
    return out


def build_mcp_server(registry: Registry, engine: Engine, metrics: Metrics, *,
                     name: str = "kflow"):
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from .. import __version__

    calls = ToolCalls(registry, engine, metrics)
    tool_models = {t["name"]: types.Tool.model_validate(t) for t in all_tools(registry)}
    schemas = {t["name"]: t["inputSchema"] for t in all_tools(registry)}

    async def list_tools(ctx, params) -> types.ListToolsResult:
        principal = _principal_of(ctx)
        return types.ListToolsResult(tools=[tool_models[t["name"]]
                                            for t in calls.visible(principal)])

    async def call_tool(ctx, params) -> types.CallToolResult:
        res = await calls.call(_principal_of(ctx), params.name, params.arguments)
        return types.CallToolResult.model_validate(res)

    server = Server(name, version=__version__,
                    instructions="Each tool runs a kflow workflow durably. A run that "
                                 "waits for a signal answers its run_id; send the signal "
                                 "with signal_run and follow the run with get_run.",
                    on_list_tools=list_tools, on_call_tool=call_tool,
                    get_tool_input_schema=schemas.get)
    server.kflow_calls = calls  # type: ignore[attr-defined]
    return server


def http_app(server, host: str = "127.0.0.1"):
    """The ``/mcp`` ASGI app (stateless streamable HTTP, JSON responses) and its manager,
    whose ``run()`` the application's lifespan enters."""
    from mcp.server.streamable_http_manager import (
        StreamableHTTPASGIApp,
        StreamableHTTPSessionManager,
    )
    from mcp.server.transport_security import TransportSecuritySettings

    security = None
    if host in ("127.0.0.1", "localhost", "::1"):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    manager = StreamableHTTPSessionManager(app=server, json_response=True, stateless=True,
                                           security_settings=security)
    return manager, StreamableHTTPASGIApp(manager)


def run_stdio(files: list[str], *, db=None, block_for: float = 1.0) -> int:
    """``kflow mcp FILE...``: serve the tools over stdin/stdout until the client leaves."""
    import anyio
    from mcp.server.stdio import stdio_server

    from ..runtime.journal import default_db_path
    from .registry import Registry as _Registry

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    registry = _Registry.load(files)
    metrics = Metrics()
    engine = Engine(registry, db or default_db_path(), block_for=block_for, metrics=metrics)
    server = build_mcp_server(registry, engine, metrics)

    async def main() -> None:
        await engine.open()
        try:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream,
                                 server.create_initialization_options())
        finally:
            await engine.close()

    anyio.run(main)
    return 0
