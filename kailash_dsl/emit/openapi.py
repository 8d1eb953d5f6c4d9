"""OpenAPI 3.1 description of the REST API that ``kflow serve`` serves.

Per workflow of the named files (imported workflows are not exposed), one operation:
``POST /workflows/<Name>`` unless ``@api(path:, method:)`` says otherwise. The request
body is the workflow's input object; the answers are

- ``200`` the run finished: ``{run_id, status: completed|failed, output, error}``;
- ``202`` the run is parked on a ``wait``/``sleep``: ``{run_id, status: waiting, ...}``;
- ``422`` the input does not match the parameters: an RFC 9457 ``application/problem+json``.

Plus the run endpoints every server has: ``GET /runs/{run_id}``,
``POST /runs/{run_id}/signals/{name}`` and ``GET /runs/{run_id}/events`` (server-sent
events). Path templates in ``@api(path:)`` (``/orders/{id}``) name parameters of the
workflow, which then travel in the path instead of the body; for ``GET``, ``DELETE`` and
``HEAD`` the remaining parameters are query parameters.
"""

from __future__ import annotations

import re
from typing import Any

from ..compiler import types as T
from ..compiler.program import Program, WorkflowInfo
from .common import NOT_CONST, EmitError, Namer, const_value, doc_summary, dumps, json_default
from .jsonschema import SchemaBuilder, nullable

OPENAPI_VERSION = "3.1.0"
PROBLEM = "application/problem+json"
_BODY_METHODS = {"post", "put", "patch"}
_QUERY_METHODS = {"get", "delete", "head", "options"}
#: schemas every document has; a user type with one of these names is qualified instead
FIXED_SCHEMAS = ("RunStatus", "RunEvent", "RunError", "Run", "Problem", "ValidationProblem")


def _camel(name: str) -> str:
    return name[:1].upper() + name[1:]


def build_document(programs: list[Program]) -> dict:
    ops_namer = Namer(["getRun", "sendSignal", "streamRunEvents"])
    b = SchemaBuilder(programs, ref_base="#/components/schemas/",
                      namer=Namer(FIXED_SCHEMAS))
    wfs = [(p, wf) for p in programs for wf in p.workflows()]
    for _, wf in wfs:
        b.collect_workflow(wf)
    b._assign_names()

    # Which workflow names are ambiguous across the named files (qualify those).
    counts: dict[str, int] = {}
    for _, wf in wfs:
        counts[wf.name] = counts.get(wf.name, 0) + 1

    paths: dict[str, dict] = {}
    seen: dict[tuple[str, str], str] = {}
    wf_schemas: dict[str, dict] = {}
    tags: list[dict] = []
    for p, wf in wfs:
        tag = p.entry.name
        if all(t["name"] != tag for t in tags):
            tags.append({"name": tag, "description": f"Workflows of the kflow module `{tag}`."})
        base = wf.name if counts[wf.name] == 1 else \
            "".join(_camel(s) for s in re.split(r"[^A-Za-z0-9]+", p.entry.name)) + wf.name
        path = wf.api_path or f"/workflows/{wf.name}"
        if not path.startswith("/"):
            path = "/" + path
        method = (wf.api_method or "POST").lower()
        if (path, method) in seen:
            raise EmitError(f"workflows {seen[(path, method)]} and {wf.qualname} are both "
                            f"exposed as {method.upper()} {path}; give one of them "
                            f"another @api(path:)")
        seen[(path, method)] = wf.qualname
        op, schemas = _operation(b, p, wf, tag, base, path, method, ops_namer)
        wf_schemas.update(schemas)
        paths.setdefault(path, {})[method] = op

    paths.update(_run_paths())
    components = {**b.defs, **wf_schemas, **_fixed_schemas()}
    names = [p.entry.name for p in programs]
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": ", ".join(names),
            "version": "1.0.0",
            "description": _info_description(),
        },
        "tags": [*tags, {"name": "runs", "description": "Inspect, signal and follow runs."}],
        "paths": paths,
        "components": {"schemas": components},
    }
    return doc


def _info_description() -> str:
    return ("The REST API `kflow serve` serves for these workflows. Starting a workflow "
            "answers 200 when the run finished (completed or failed), or 202 with the "
            "run's id when it is waiting on a signal or a timer; follow it with "
            "`GET /runs/{run_id}` or the event stream.")


def _operation(b: SchemaBuilder, p: Program, wf: WorkflowInfo, tag: str, base: str,
               path: str, method: str, ops_namer: Namer) -> tuple[dict, dict]:
    op_id = ops_namer.claim(f"run{base}")
    schemas: dict[str, dict] = {}
    input_name = b.namer.claim(f"{base}Input")
    result_name = b.namer.claim(f"{base}Result")
    waiting_name = b.namer.claim(f"{base}Waiting")

    path_params = re.findall(r"\{([^}/]+)\}", path)
    by_name = {prm.name: prm for prm in wf.params}
    parameters: list[dict] = []
    for name in path_params:
        prm = by_name.get(name)
        s = b.schema(prm.type) if prm is not None else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True,
                           "description": f"The workflow parameter `{name}`."
                           if prm else f"Path segment `{name}`.", "schema": s})
    body_params = [prm for prm in wf.params if prm.name not in path_params]
    input_schema = b.input_schema(wf, p, title=f"{wf.name} input")
    if path_params:
        input_schema["properties"] = {k: v for k, v in input_schema["properties"].items()
                                      if k not in path_params}
        if "required" in input_schema:
            req = [r for r in input_schema["required"] if r not in path_params]
            if req:
                input_schema["required"] = req
            else:
                del input_schema["required"]
    input_schema.pop("description", None)
    schemas[input_name] = input_schema

    out = b.output_schema(wf)
    schemas[result_name] = {
        "title": f"{wf.name} finished run",
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "description": "The run's id."},
            "status": {"type": "string", "enum": ["completed", "failed"]},
            "output": {**nullable(out),
                       "description": "The workflow's result (null when it failed)."},
            "error": {"anyOf": [{"$ref": b.ref_base + "RunError"}, {"type": "null"}],
                      "description": "Why the run failed (null when it completed)."},
        },
        "required": ["run_id", "status", "output", "error"],
    }
    schemas[waiting_name] = {
        "title": f"{wf.name} waiting run",
        "type": "object",
        "properties": {
            "run_id": {"type": "string", "description": "The run's id."},
            "status": {"type": "string", "enum": ["waiting", "running"]},
            "output": {"type": "null"},
            "error": {"type": "null"},
        },
        "required": ["run_id", "status"],
    }

    op: dict[str, Any] = {"tags": [tag], "operationId": op_id,
                          "summary": doc_summary(wf.doc) or f"Run the {wf.name} workflow"}
    desc = wf.doc or f"Start a run of the workflow `{wf.qualname}`."
    op["description"] = desc
    if method in _QUERY_METHODS:
        for prm in body_params:
            s = dict(b.schema(prm.type))
            if prm.has_default:
                v = const_value(prm.default, p)
                if v is not NOT_CONST:
                    s["default"] = json_default(prm.type, v)
            q: dict[str, Any] = {"name": prm.name, "in": "query",
                                 "required": not prm.has_default and not T.is_optional(prm.type)}
            if _simple(prm.type):
                q["schema"] = s
            else:
                q["content"] = {"application/json": {"schema": s}}
            parameters.append(q)
    else:
        required = bool(input_schema.get("required"))
        op["requestBody"] = {
            "description": f"The parameters of `{wf.name}`.",
            "required": required,
            "content": {"application/json": {"schema": b.ref(input_name)}},
        }
    if parameters:
        op["parameters"] = parameters
    op["responses"] = {
        "200": {"description": "The run finished: `status` says whether it completed "
                               "(with `output`) or failed (with `error`).",
                "content": {"application/json": {"schema": b.ref(result_name)}}},
        "202": {"description": "The run is waiting on a signal or a timer; follow it with "
                               "`GET /runs/{run_id}` or `GET /runs/{run_id}/events`.",
                "headers": {"Location": {"description": "`/runs/{run_id}`",
                                         "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": b.ref(waiting_name)}}},
        "422": {"description": "The input does not match the workflow's parameters.",
                "content": {PROBLEM: {"schema": b.ref("ValidationProblem")}}},
    }
    if wf.api_roles:
        op["x-kflow-roles"] = list(wf.api_roles)
    return op, schemas


def _simple(t: T.Type) -> bool:
    t = T.strip_optional(t)
    return isinstance(t, (T.Prim, T.EnumT)) and t != T.JSON


def _problem_ref(desc: str) -> dict:
    return {"description": desc,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _run_paths() -> dict:
    run_id = {"name": "run_id", "in": "path", "required": True,
              "description": "The run's id.", "schema": {"type": "string"}}
    return {
        "/runs/{run_id}": {"get": {
            "tags": ["runs"],
            "operationId": "getRun",
            "summary": "Get a run",
            "description": "The run's status, and its output or error once it finished.",
            "parameters": [run_id],
            "responses": {
                "200": {"description": "The run.",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Run"}}}},
                "404": _problem_ref("No run has this id."),
            },
        }},
        "/runs/{run_id}/signals/{name}": {"post": {
            "tags": ["runs"],
            "operationId": "sendSignal",
            "summary": "Send a signal to a run",
            "description": "Deliver the signal `name` to the run; a `wait \"name\"` that is "
                           "waiting for it resumes with the body as its payload.",
            "parameters": [run_id, {"name": "name", "in": "path", "required": True,
                                    "description": "The signal's name.",
                                    "schema": {"type": "string"}}],
            "requestBody": {"description": "The signal's payload (any JSON).",
                            "required": False,
                            "content": {"application/json": {"schema": {}}}},
            "responses": {
                "202": {"description": "The signal was recorded.",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Run"}}}},
                "404": _problem_ref("No run has this id, or the run never waits for a "
                                    "signal of this name."),
                "409": _problem_ref("The run has finished (completed, failed or "
                                    "cancelled): it takes no more signals."),
                "422": {"description": "The payload does not match the signal's type.",
                        "content": {PROBLEM: {"schema": {
                            "$ref": "#/components/schemas/ValidationProblem"}}}},
            },
        }},
        "/runs/{run_id}/events": {"get": {
            "tags": ["runs"],
            "operationId": "streamRunEvents",
            "summary": "Follow a run's events",
            "description": "Server-sent events: one per `emit` and per step, then the "
                           "run's end. Each event's `event:` field is its name and its "
                           "`data:` field is JSON.",
            "parameters": [run_id],
            "responses": {
                "200": {"description": "The event stream.",
                        "content": {"text/event-stream": {"schema": {
                            # OpenAPI 3.1 tools read an event stream's schema as one event's
                            "type": "object",
                            "description": "One server-sent event: `event` is its type "
                                           "(`started`, `step.completed`, `waiting`, "
                                           "`signalled`, an `emit` name, ..., finally "
                                           "`end`), `data` a RunEvent as JSON (for `end`, "
                                           "the Run), `id` its sequence number.",
                            "properties": {
                                "event": {"type": "string"},
                                "data": {"type": "string",
                                         "contentMediaType": "application/json"},
                                "id": {"type": "string"},
                                "retry": {"type": "integer"},
                            },
                        }}}},
                "404": _problem_ref("No run has this id."),
            },
        }},
    }


def _fixed_schemas() -> dict:
    return {
        "RunStatus": {"type": "string",
                      "enum": ["running", "waiting", "completed", "failed", "cancelled"]},
        "RunEvent": {
            "type": "object",
            "description": "One event of a run's stream: a lifecycle event (started, "
                           "step.completed, step.retried, step.failed, waiting, signalled, "
                           "completed, failed, cancelled, ...) or a user `emit`.",
            "required": ["seq", "ts", "type"],
            "properties": {
                "seq": {"type": "integer", "description": "Position in the run's stream."},
                "ts": {"type": "number", "description": "Unix time in seconds."},
                "type": {"type": "string"},
                "step": {"type": ["string", "null"], "description": "The step key."},
                "data": {"description": "The event's payload (an emit's value)."},
            },
        },
        "RunError": {
            "type": "object",
            "description": "Why a run failed: the error kind (`Timeout`, `StepFailed`, a "
                           "`fail Kind(...)` kind, ...), its message, and the step key.",
            "properties": {"kind": {"type": "string"}, "message": {"type": "string"},
                           "step": {"type": "string"}},
            "required": ["kind", "message", "step"],
        },
        "Run": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string"},
                "workflow": {"type": "string"},
                "status": {"$ref": "#/components/schemas/RunStatus"},
                "output": {"description": "The result once the run completed."},
                "error": {"anyOf": [{"$ref": "#/components/schemas/RunError"},
                                    {"type": "null"}]},
            },
            "required": ["run_id", "status"],
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "properties": {
                "type": {"type": "string", "format": "uri-reference",
                         "default": "about:blank"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string", "format": "uri-reference"},
            },
        },
        "ValidationProblem": {
            "description": "RFC 9457 problem details for an input that does not match: "
                           "`errors` says which field, what was expected, what was found.",
            "allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {"type": "object", "properties": {"errors": {
                    "type": "array",
                    "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "expected": {"type": "string"},
                        "found": {"type": "string"}, "message": {"type": "string"},
                    }, "required": ["message"]},
                }}},
            ],
        },
    }


def emit(programs: list[Program]) -> str:
    return dumps(build_document(programs))
