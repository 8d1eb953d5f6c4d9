"""`kflow emit jsonschema`: the type → JSON Schema 2020-12 mapping, and whole documents.

Documents of every example and fixture are snapshotted (`pytest tests/test_emit_jsonschema.py
--snapshot-update` after an intended change, then review the diff). Every document must be
a valid 2020-12 schema, and the sample inputs and expected outputs of the examples and of
the conformance cases must validate against the workflow input/output schemas.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from emit_fixtures.support import (
    CASES,
    EXAMPLES,
    JsonSnapshot,
    clean_sources,
    directives,
    load,
    snapshot_sources,
)

from kailash_dsl.compiler import types as T
from kailash_dsl.emit import jsonschema as js
from kailash_dsl.emit.common import Namer

V = jsonschema.Draft202012Validator


def schema_of(t):
    b = js.SchemaBuilder()
    s = b.schema(t)
    return s, b.defs


# ----------------------------------------------------------------------------- mapping


@pytest.mark.parametrize("t, expected", [
    (T.INT, {"type": "integer"}),
    (T.FLOAT, {"type": "number"}),
    (T.STR, {"type": "string"}),
    (T.BOOL, {"type": "boolean"}),
    (T.NULL, {"type": "null"}),
    (T.JSON, {}),
    (T.BYTES, {"type": "string", "contentEncoding": "base64"}),
    (T.DURATION, {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$"}),
    (T.ListT(T.INT), {"type": "array", "items": {"type": "integer"}}),
    (T.MapT(T.STR), {"type": "object", "additionalProperties": {"type": "string"}}),
    (T.Optional(T.STR), {"type": ["string", "null"]}),
    (T.Optional(T.DURATION), {"type": ["string", "null"], "pattern": "^[0-9]+(ms|s|m|h|d)$"}),
    (T.Optional(T.ListT(T.INT)), {"type": ["array", "null"], "items": {"type": "integer"}}),
])
def test_unnamed_types(t, expected):
    s, defs = schema_of(t)
    assert s == expected
    assert defs == {}
    V.check_schema(s)


def test_duration_pattern_accepts_literals_only():
    s, _ = schema_of(T.DURATION)
    v = V(s)
    for ok in ("250ms", "30s", "5m", "2h", "1d"):
        assert v.is_valid(ok), ok
    for bad in ("30", "1.5s", "s", "30 s", 30, "1w"):
        assert not v.is_valid(bad), bad


def test_enum_is_a_named_string_enum():
    status = T.EnumT("Status", ("pending", "paid"), "shop.Status")
    s, defs = schema_of(status)
    assert s == {"$ref": "#/$defs/Status"}
    assert defs["Status"] == {"title": "Status", "type": "string", "enum": ["pending", "paid"]}
    opt, defs = schema_of(T.Optional(status))
    assert opt == {"anyOf": [{"$ref": "#/$defs/Status"}, {"type": "null"}]}


def test_record_required_defaults_and_nullability():
    item = T.RecordT((
        T.FieldT("sku", T.STR),
        T.FieldT("qty", T.INT, True, 1),
        T.FieldT("coupon", T.Optional(T.STR), True, None),
        T.FieldT("note", T.Optional(T.STR)),
        T.FieldT("ttl", T.DURATION, True, 90_000),
        T.FieldT("blob", T.BYTES, True, b"hi"),
    ), "Item")
    s, defs = schema_of(item)
    assert s == {"$ref": "#/$defs/Item"}
    d = defs["Item"]
    assert d["type"] == "object"
    assert d["required"] == ["sku"]  # defaults and optional fields may be omitted
    assert d["properties"]["qty"] == {"type": "integer", "default": 1}
    assert d["properties"]["coupon"] == {"type": ["string", "null"], "default": None}
    assert d["properties"]["note"] == {"type": ["string", "null"]}
    assert d["properties"]["ttl"]["default"] == "90s"  # largest exact unit
    assert d["properties"]["blob"]["default"] == "aGk="  # base64
    assert "additionalProperties" not in d  # records are structural
    v = V({"$ref": "#/$defs/Item", "$defs": defs})
    assert v.is_valid({"sku": "a"})
    assert v.is_valid({"sku": "a", "extra": True})
    assert not v.is_valid({"qty": 1})


def test_anonymous_record_is_inline_and_nested_named_types_are_refs():
    inner = T.RecordT((T.FieldT("x", T.INT),), "Point")
    rec = T.RecordT((T.FieldT("p", inner), T.FieldT("ps", T.ListT(T.Optional(inner)))))
    s, defs = schema_of(rec)
    assert s["type"] == "object" and "title" not in s
    assert s["properties"]["p"] == {"$ref": "#/$defs/Point"}
    assert s["properties"]["ps"]["items"] == {
        "anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}]}
    assert list(defs) == ["Point"]


def test_colliding_names_get_distinct_definitions():
    a = T.RecordT((T.FieldT("x", T.INT),), "Item")
    b = T.RecordT((T.FieldT("y", T.STR),), "Item")
    builder = js.SchemaBuilder(namer=Namer())
    builder.collect(a)
    builder.collect(b)
    sa, sb = builder.schema(a), builder.schema(b)
    assert sa != sb
    assert set(builder.defs) == {sa["$ref"].rsplit("/", 1)[1], sb["$ref"].rsplit("/", 1)[1]}


def test_nullable_helper():
    assert js.nullable({}) == {}
    assert js.nullable({"type": "null"}) == {"type": "null"}
    assert js.nullable({"type": ["string", "null"]}) == {"type": ["string", "null"]}
    assert js.nullable({"enum": ["a"], "type": "string"}) == {
        "enum": ["a", None], "type": ["string", "null"]}


# ----------------------------------------------------------------------------- documents


def _document(path):
    program = load(path)
    assert program is not None, f"{path} does not check clean"
    return js.build_document([program])


@pytest.mark.parametrize("path", [p for _, p in snapshot_sources()],
                         ids=[i for i, _ in snapshot_sources()])
def test_document_snapshot(path, snapshot):
    program = load(path)
    text = js.emit([program])
    assert text == js.emit([load(path)]), "output must be deterministic"
    assert text == snapshot(extension_class=JsonSnapshot)


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_document_is_valid_2020_12(path):
    doc = _document(path)
    V.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    program = load(path)
    for wf in program.workflows():
        assert f"{wf.name}Input" in doc["$defs"] and f"{wf.name}Output" in doc["$defs"]
        assert doc["$defs"][f"{wf.name}Input"]["additionalProperties"] is False


def _validator(doc, name):
    return V({"$ref": f"#/$defs/{name}", "$defs": doc["$defs"]})


@pytest.mark.parametrize("folder", sorted(p.parent for p in EXAMPLES.glob("*/*.kflow")),
                         ids=lambda p: p.name)
def test_example_inputs_match_the_input_schema(folder):
    path = next(folder.glob("*.kflow"))
    doc = _document(path)
    (wf,) = load(path).workflows()
    v = _validator(doc, f"{wf.name}Input")
    for sample in sorted(folder.glob("input*.json")):
        data = json.loads(sample.read_text(encoding="utf-8"))
        errors = [e.message for e in v.iter_errors(data)]
        assert not errors, (sample.name, errors)
    assert not v.is_valid({**json.loads((folder / "input.json").read_text()), "bogus": 1})


def _run_cases():
    if not CASES.is_dir():
        return []
    return sorted(p for p in (CASES / "run").glob("*.kflow")) + \
        sorted((CASES / "tx").glob("*.kflow")) + sorted((CASES / "durable").glob("*.kflow"))


@pytest.mark.parametrize("path", _run_cases(), ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_case_inputs_and_outputs_match_the_schemas(path):
    d = directives(path)
    program = load(path)
    doc = js.build_document([program])
    wfs = program.workflows()
    name = d.get("workflow", [None])[0] or (wfs[0].name if len(wfs) == 1 else None)
    assert name, "case needs # workflow:"
    data = json.loads(d.get("input", ["{}"])[0])
    assert _validator(doc, f"{name}Input").is_valid(data)
    if "expect-output" in d:
        out = json.loads(d["expect-output"][0])
        errors = [e.message for e in _validator(doc, f"{name}Output").iter_errors(out)]
        assert not errors, errors


def test_shared_folder_is_visible():
    if not CASES.is_dir():
        pytest.skip("../shared/conformance not found: conformance-based emitter tests skipped")
