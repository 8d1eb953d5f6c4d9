"""MCP tool manifests: the ``tools/list`` result (protocol 2025-11-25) for ``kflow mcp``.

One tool per workflow of the named files:

- ``name``: ``@mcp(name:)``, default the workflow name in snake_case;
- ``title``: the workflow name in words (``ProcessOrder`` → ``Process Order``);
- ``description``: the doc comment;
- ``inputSchema``: the parameters (a closed object; declared types under ``$defs``);
- ``outputSchema``: the result when it is a record. MCP wants an object at the root, so
  any other result (``int``, ``list[T]``, an optional record, ``null``...) is wrapped as
  ``{"result": T}``, and ``kflow mcp`` answers ``structuredContent: {"result": value}``;
- ``annotations`` from the effects of every node the workflow can reach, sub-workflows
  included (:func:`kailash_dsl.emit.common.effect_summary`): ``readOnlyHint`` when no
  write step is reachable, ``destructiveHint`` when a reachable write has no
  ``@compensate``, ``idempotentHint`` when every reachable write is ``@idempotent``, and
  ``openWorldHint`` when a reachable node is external (``std.http``, or a non-pure node of
  the user's own: kflow cannot see what it talks to).
"""

from __future__ import annotations

from typing import Any

from ..compiler import types as T
from ..compiler.program import Program, WorkflowInfo
from .common import EmitError, dumps, effect_summary, snake_case, title_case
from .jsonschema import SchemaBuilder

PROTOCOL_VERSION = "2025-11-25"
WRAP_KEY = "result"


def result_is_wrapped(wf: WorkflowInfo) -> bool:
    """Whether ``kflow mcp`` wraps this workflow's result as ``{"result": value}``."""
    return not isinstance(wf.result, T.RecordT)


def tool_name(wf: WorkflowInfo) -> str:
    return wf.mcp_name or snake_case(wf.name)


def build_tool(program: Program, wf: WorkflowInfo) -> dict:
    b = SchemaBuilder([program])
    b.collect_workflow(wf)
    b._assign_names()
    input_schema = b.input_schema(wf, program)
    input_schema.pop("description", None)  # the tool's description says it already
    if isinstance(wf.result, T.RecordT):
        if wf.result.name:
            output = b.named_schema(wf.result)
        else:
            output = b.record_schema(wf.result)
    else:
        output = {
            "type": "object",
            "description": f"The workflow's result ({wf.result.show()}), wrapped in "
                           f"`{WRAP_KEY}` because MCP structured content is an object.",
            "properties": {WRAP_KEY: b.schema(wf.result)},
            "required": [WRAP_KEY],
        }
    if b.defs:
        input_schema["$defs"] = dict(b.defs)
        output["$defs"] = dict(b.defs)
    eff = effect_summary(wf, program)
    tool: dict[str, Any] = {
        "name": tool_name(wf),
        "title": title_case(wf.name),
        "description": wf.doc or f"Run the kflow workflow `{wf.qualname}`.",
        "inputSchema": input_schema,
        "outputSchema": output,
        "annotations": {
            "readOnlyHint": eff.read_only,
            "destructiveHint": eff.destructive,
            "idempotentHint": eff.idempotent,
            "openWorldHint": eff.open_world,
        },
    }
    return tool


def build_tools(programs: list[Program]) -> dict:
    tools: list[dict] = []
    seen: dict[str, str] = {}
    for p in programs:
        for wf in p.workflows():
            tool = build_tool(p, wf)
            if tool["name"] in seen:
                raise EmitError(f"workflows {seen[tool['name']]} and {wf.qualname} would "
                                f"both be the MCP tool `{tool['name']}`; name one with "
                                f"@mcp(name: \"...\")")
            seen[tool["name"]] = wf.qualname
            tools.append(tool)
    return {"tools": tools}


def emit(programs: list[Program]) -> str:
    return dumps(build_tools(programs))
