"""One registration: the served files, compiled once, seen by every channel.

For each file the registry keeps the checked :class:`~kailash_dsl.compiler.program.Program`
(what the emitters describe) and the :class:`~kailash_dsl.compiler.bytecode.CompiledProgram`
(what the VM runs). Each workflow declared in a named file becomes an :class:`Entry`: its
REST route (``@api(path:, method:)``, default ``POST /workflows/<Name>``), its MCP tool
(``@mcp(name:)``, default the snake_case name), its roles (``@api(roles: [...])``) and its
input checking. The OpenAPI document and the MCP tool list are built by the very
functions ``kflow emit openapi`` and ``kflow emit mcp`` call, so what is served is what is
emitted.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler import types as T
from ..runtime.api import fast_input, input_problems
from . import StartupError

#: paths the server itself answers; a workflow route may not take them
RESERVED = ("/runs", "/healthz", "/metrics", "/openapi.json", "/docs", "/mcp")
#: MCP tools every server has besides one per workflow
BUILTIN_TOOLS = ("get_run", "signal_run")
_QUERY_METHODS = {"GET", "DELETE", "HEAD", "OPTIONS"}


#: one server-sent event of ``GET /runs/{run_id}/events``
SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One event: `event` is its type (`started`, `step.completed`, `waiting`, "
                   "`signalled`, an `emit` name, ..., and finally `end`), `data` the event "
                   "as JSON (for `end`, the run), `id` its sequence number.",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


class InputError(Exception):
    """The input does not match the workflow's parameters; ``errors`` names the fields."""

    def __init__(self, message: str, errors: list[dict]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class UnknownSignal(InputError):
    """The run never waits for a signal of this name (REST: 404 — no such resource)."""


@dataclass(eq=False)
class Entry:
    """One served workflow."""

    name: str
    qualname: str
    file: str  # absolute path of the file that declares it
    info: Any  # WorkflowInfo (checked program)
    prog: Any  # CompiledProgram
    rwf: Any  # RuntimeWorkflow
    method: str
    path: str  # the route template, e.g. /orders/{id}
    path_params: list[str]
    tool_name: str
    tool: dict
    wrapped: bool  # MCP structured content is {"result": value}
    roles: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)  # name -> RuntimeParam

    @property
    def in_query(self) -> bool:
        return self.method in _QUERY_METHODS

    @functools.cached_property
    def deferrable(self) -> bool:
        """No write step anywhere: its run can be journaled with its first commit."""
        return not any(kind == "write" for kind, _ in self.rwf.effects)


class Registry:
    def __init__(self) -> None:
        self.files: list[str] = []
        self.entries: list[Entry] = []
        self.by_qualname: dict[str, Entry] = {}
        self.by_tool: dict[str, Entry] = {}
        self.programs: dict[str, Any] = {}  # absolute path -> CompiledProgram
        self.openapi: dict = {}
        self.tools: list[dict] = []  # the `kflow emit mcp` tools, in order

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, files: list[str]) -> Registry:
        from ..emit import mcp as emit_mcp
        from ..emit import openapi as emit_openapi
        from ..emit.common import EmitError, load_programs
        from ..runtime import api

        reg = cls()
        if not files:
            raise StartupError("name at least one .kflow file to serve")
        checked = []
        for f in files:
            p = Path(f)
            if not p.exists():
                raise StartupError(f"no such file: {f}")
            if p.is_dir():
                raise StartupError(f"{f} is a folder; name the .kflow files to serve")
            ap = str(p.resolve())
            if ap in reg.programs:
                continue
            try:
                prog = api.load(ap)
            except api.CannotStart as exc:
                raise StartupError(exc.message, exc.diagnostics) from None
            try:
                (program,) = load_programs([ap])
            except EmitError as exc:
                raise StartupError(str(exc)) from None
            reg.files.append(ap)
            reg.programs[ap] = prog
            checked.append((ap, program, prog))
        programs = [c[1] for c in checked]
        try:
            reg.openapi = emit_openapi.build_document(programs)
            reg.tools = emit_mcp.build_tools(programs)["tools"]
        except EmitError as exc:
            raise StartupError(str(exc)) from None
        tools = {t["name"]: t for t in reg.tools}
        for ap, program, prog in checked:
            for info in program.workflows():
                rwf = prog.workflows.get(info.qualname) or prog.find_workflow(info.name)
                if rwf is None:  # pragma: no cover - the compiler emits every workflow
                    raise StartupError(f"internal: {info.qualname} was not compiled")
                path = info.api_path or f"/workflows/{info.name}"
                if not path.startswith("/"):
                    path = "/" + path
                method = (info.api_method or "POST").upper()
                if any(path == r or path.startswith(r + "/") for r in RESERVED):
                    raise StartupError(f"workflow {info.qualname} is exposed as {method} {path}, "
                                       f"which `kflow serve` answers itself; give it another "
                                       "@api(path:)")
                if path not in reg.openapi["paths"] or \
                        method.lower() not in reg.openapi["paths"][path]:
                    raise StartupError(f"internal: {method} {path} is not in the OpenAPI "
                                       "document")
                tname = emit_mcp.tool_name(info)
                if tname in BUILTIN_TOOLS:
                    raise StartupError(f"workflow {info.qualname} would be the MCP tool "
                                       f"`{tname}`, which every kflow server has already; "
                                       "name it with @mcp(name: \"...\")")
                e = Entry(info.name, info.qualname, ap, info, prog, rwf, method, path,
                          re.findall(r"\{([^}/]+)\}", path), tname, tools[tname],
                          emit_mcp.result_is_wrapped(info), tuple(info.api_roles or ()),
                          {prm.name: prm for prm in rwf.params})
                reg.entries.append(e)
                reg.by_qualname[e.qualname] = e
                reg.by_tool[tname] = e
        return reg

    def entry_for_run(self, workflow: str) -> Entry | None:
        return self.by_qualname.get(workflow)

    def roles_for_run(self, workflow: str) -> tuple[str, ...] | None:
        """Roles a caller needs to see a run: its workflow's; None when not served here."""
        e = self.by_qualname.get(workflow)
        return e.roles if e is not None else None

    def program_for(self, source_path: str):
        return self.programs.get(source_path)

    # --------------------------------------------------------- served documents
    def served_openapi(self, *, auth: bool, rate_limited: bool) -> dict:
        """The emitted document, plus what only the running server knows.

        Added: ``409`` on ``sendSignal`` (a signal to a finished run); with ``--api-keys``
        the security schemes and ``401``/``403`` answers; with a rate limit, ``429``.
        Each is added only when the emitted document does not say it already.
        """
        doc = copy.deepcopy(self.openapi)
        problem = {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}
        comps = doc.setdefault("components", {})
        schemas = comps.setdefault("schemas", {})
        status = schemas.get("RunStatus")
        if status and "enum" in status and "cancelled" not in status["enum"]:
            status["enum"] = [*status["enum"], "cancelled"]
        events = doc["paths"].get("/runs/{run_id}/events", {}).get("get")
        if events is not None:
            sse = events["responses"].get("200", {}).get("content", {}).get(
                "text/event-stream")
            if sse is not None and sse.get("schema") == {"type": "string"} \
                    and "itemSchema" not in sse:
                # OpenAPI 3.1 reads an event stream's `schema` as one event's
                sse["schema"] = SSE_EVENT_SCHEMA
        sig = doc["paths"].get("/runs/{run_id}/signals/{name}", {}).get("post")
        if sig is not None:
            sig["responses"].setdefault("409", {
                "description": "The run has finished; only running or waiting runs take "
                               "signals.", "content": problem})
        if auth:
            comps.setdefault("securitySchemes", {}).update({
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "An API key of `kflow serve --api-keys`."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": "The same API key, in a header."},
            })
            doc.setdefault("security", [{"bearerAuth": []}, {"apiKeyHeader": []}])
        for item in doc["paths"].values():
            for op in item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                r = op["responses"]
                if auth:
                    r.setdefault("401", {"description": "No API key, or an unknown one.",
                                         "content": problem})
                    r.setdefault("403", {"description": "The API key lacks a role this "
                                                        "needs.", "content": problem})
                if rate_limited:
                    r.setdefault("429", {
                        "description": "Too many requests for this API key.",
                        "headers": {"Retry-After": {
                            "description": "Seconds until a request is allowed again.",
                            "schema": {"type": "integer"}}},
                        "content": problem})
        return doc

    # ------------------------------------------------------------------- input
    def request_input(self, e: Entry, path_params: dict[str, str], query, body: Any) -> Any:
        """The workflow input from a request's path, query and JSON body."""
        data: dict[str, Any]
        if e.in_query:
            data = {}
            for name, prm in e.params.items():
                if name in e.path_params:
                    continue
                raw = query.get(name) if query is not None else None
                if raw is not None:
                    data[name] = coerce_text(prm.type, raw)
        else:
            if body is None:
                data = {}
            elif not isinstance(body, dict):
                return body  # check_input explains
            elif not e.path_params:
                return body  # the whole input (and not copied: nothing changes it)
            else:
                data = dict(body)
                for name in e.path_params:
                    if name in data:
                        raise InputError(
                            f"input field `{name}` travels in the path ({e.path}), not in "
                            "the body", [{"field": name, "message": "given in the body; it "
                                          "is a path parameter"}])
        for name in e.path_params:
            prm = e.params.get(name)
            if prm is not None and name in path_params:
                data[name] = coerce_text(prm.type, path_params[name])
        return data


def coerce_text(t, raw: str) -> Any:
    """A path or query string as the JSON value the parameter's type wants, if it reads so.

    What does not read as that type is passed on as the string, so the input check
    reports it with the field's name.
    """
    base = T.strip_optional(t)
    if isinstance(base, T.Prim):
        n = base.name
        if n == "int":
            if re.fullmatch(r"[+-]?\d{1,30}", raw):
                return int(raw)
            return raw
        if n == "float":
            if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", raw):
                return float(raw)
            return raw
        if n == "bool":
            return {"true": True, "false": False}.get(raw, raw)
        if n == "null":
            return None if raw in ("", "null") else raw
        if n in ("str", "duration", "bytes"):
            return raw
    if isinstance(base, T.EnumT):
        return raw
    if T.is_optional(t) and raw == "null":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def check_input(wf, data: Any) -> dict:
    """JSON input → runtime values, or :class:`InputError` naming every bad field.

    The rules and messages of `kflow run` (:func:`kailash_dsl.runtime.api.input_problems`),
    with each problem also given as ``{field, expected, found, message}``.
    """
    fast = fast_input(wf, data)
    if fast is not None:
        return fast
    out, errors = input_problems(wf, data)
    if errors:
        raise InputError(errors[0]["message"], errors)
    return out


def check_signal(prog, name: str, payload: Any, run_id: str) -> None:
    """Raise :class:`InputError` when run ``run_id`` never waits for ``name`` or the
    payload does not match the wait's type (the rules of ``kflow signal``)."""
    if prog is None:
        return
    types = [w.waits[name] for w in prog.workflows.values() if name in w.waits]
    if not types:
        names = sorted({n for w in prog.workflows.values() for n in w.waits})
        raise UnknownSignal(f"run `{run_id}` never waits for a signal named `{name}` (it waits "
                         f"for: {', '.join(names) or 'nothing'})",
                         [{"field": "name", "expected": " | ".join(names) or "nothing",
                           "found": name, "message": f"no `wait \"{name}\"` in this run"}])
    try:
        T.check_value(types[0], payload, "data", from_json=True)
    except T.ValueMismatch as exc:
        raise InputError(f"signal `{name}` payload does not match `{types[0].show()}`: "
                         f"{exc}; the run keeps waiting",
                         [{"field": exc.path or "data", "expected": exc.expected.show(),
                           "found": T.describe_value(exc.found), "message": str(exc)}]) from None
