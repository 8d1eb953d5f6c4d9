"""`kflow emit mcp`: the MCP tools/list result (protocol 2025-11-25).

Every manifest (examples, fixtures, clean conformance cases) must validate with the `mcp`
package's `ListToolsResult` model in strict mode and against the protocol's JSON Schema
(`../shared/schemas/mcp-2025-11-25.schema.json`, skipped visibly when absent).
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from emit_fixtures.support import (
    EXAMPLES,
    FIXTURES,
    JsonSnapshot,
    clean_sources,
    load,
    mcp_list_tools_schema,
    snapshot_sources,
)

from kailash_dsl.emit import mcp
from kailash_dsl.emit.common import EmitError

V = jsonschema.Draft202012Validator


def _tools(*paths):
    programs = [load(p) for p in paths]
    assert all(programs)
    return mcp.build_tools(programs)


def _by_name(result):
    return {t["name"]: t for t in result["tools"]}


@pytest.mark.parametrize("path", [p for _, p in snapshot_sources()],
                         ids=[i for i, _ in snapshot_sources()])
def test_manifest_snapshot(path, snapshot):
    text = mcp.emit([load(path)])
    assert text == mcp.emit([load(path)]), "output must be deterministic"
    assert text == snapshot(extension_class=JsonSnapshot)


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_manifest_validates_with_the_mcp_package(path):
    from mcp.types import ListToolsResult

    result = _tools(path)
    parsed = ListToolsResult.model_validate(result, strict=True)
    assert [t.name for t in parsed.tools] == [t["name"] for t in result["tools"]]
    for tool in result["tools"]:
        V.check_schema(tool["inputSchema"])
        V.check_schema(tool["outputSchema"])
        assert tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_manifest_validates_against_the_protocol_schema(path):
    schema = mcp_list_tools_schema()
    if schema is None:
        pytest.skip("../shared/schemas/mcp-2025-11-25.schema.json not found")
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in V(schema).iter_errors(_tools(path))]
    assert not errors, errors


def test_names_titles_descriptions():
    tools = _by_name(_tools(FIXTURES / "api.kflow"))
    assert set(tools) == {"get_customer", "rename_customer", "count_words", "words", "ping"}
    t = tools["get_customer"]
    assert t["title"] == "Get Customer"
    assert t["description"] == "Look a customer up by id."
    assert t["inputSchema"]["required"] == ["id"]
    assert t["inputSchema"]["additionalProperties"] is False


def test_output_schema_wraps_non_records():
    tools = _by_name(_tools(FIXTURES / "api.kflow"))
    rename = tools["rename_customer"]["outputSchema"]  # a record: as is
    assert rename["type"] == "object" and set(rename["properties"]) == {"id", "name"}
    for name, inner in [("count_words", {"type": "integer"}),
                        ("words", {"type": "array", "items": {"type": "string"}}),
                        ("ping", {"type": "null"})]:
        out = tools[name]["outputSchema"]
        assert out["properties"] == {"result": inner}, name
        assert out["required"] == ["result"]
    # an optional record is not always an object: wrapped too
    opt = tools["get_customer"]["outputSchema"]
    assert opt["properties"]["result"] == {
        "anyOf": [{"$ref": "#/$defs/Customer"}, {"type": "null"}]}
    assert "Customer" in opt["$defs"]
    V(opt).validate({"result": None})
    V(opt).validate({"result": {"id": "c1", "name": "Ada"}})


@pytest.mark.parametrize("tool, hints", [
    ("read_only", (True, False, True, True)),
    ("pure_only", (True, False, True, False)),
    ("save", (False, True, True, True)),
    ("insert2", (False, False, False, True)),
    ("fetch", (True, False, True, True)),
    ("note", (False, True, False, False)),
    ("outer", (False, True, True, True)),
])
def test_annotations_from_effects(tool, hints):
    ann = _by_name(_tools(FIXTURES / "effects.kflow"))[tool]["annotations"]
    got = (ann["readOnlyHint"], ann["destructiveHint"], ann["idempotentHint"],
           ann["openWorldHint"])
    assert got == hints


def test_example_annotations():
    orders = _by_name(_tools(EXAMPLES / "orders" / "orders.kflow"))["fulfil_order"]
    ann = orders["annotations"]
    # writes (the pivot BookShipment has no undo), not all idempotent, user nodes
    assert ann == {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False,
                   "openWorldHint": True}
    aggregate = _by_name(_tools(EXAMPLES / "aggregate" / "aggregate.kflow"))
    (tool,) = aggregate.values()
    assert tool["annotations"]["readOnlyHint"] is True
    assert tool["annotations"]["openWorldHint"] is True  # std.http


@pytest.mark.parametrize("folder", sorted(p.parent for p in EXAMPLES.glob("*/*.kflow")),
                         ids=lambda p: p.name)
def test_example_inputs_match_input_schema(folder):
    (tool,) = _tools(next(folder.glob("*.kflow")))["tools"]
    v = V(tool["inputSchema"])
    for sample in sorted(folder.glob("input*.json")):
        data = json.loads(sample.read_text(encoding="utf-8"))
        assert not [e.message for e in v.iter_errors(data)], sample.name


def test_duplicate_tool_names_are_an_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.kflow").write_text("workflow Main() -> int {\n  return 1\n}\n")
    with pytest.raises(EmitError, match="`main`"):
        _tools(tmp_path / "a.kflow", tmp_path / "b.kflow")
