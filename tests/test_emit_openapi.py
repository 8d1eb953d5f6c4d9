"""`kflow emit openapi`: OpenAPI 3.1 documents for `kflow serve`.

Documents of every example and fixture are snapshotted; every example, fixture and
clean conformance case gives a document `openapi-spec-validator` accepts.
"""

from __future__ import annotations

import pytest
from emit_fixtures.support import (
    FIXTURES,
    JsonSnapshot,
    clean_sources,
    example_files,
    load,
    snapshot_sources,
)
from openapi_spec_validator import validate

from kailash_dsl.emit import openapi
from kailash_dsl.emit.common import EmitError


def _doc(*paths):
    programs = [load(p) for p in paths]
    assert all(programs)
    return openapi.build_document(programs)


@pytest.mark.parametrize("path", [p for _, p in snapshot_sources()],
                         ids=[i for i, _ in snapshot_sources()])
def test_document_snapshot(path, snapshot):
    text = openapi.emit([load(path)])
    assert text == openapi.emit([load(path)]), "output must be deterministic"
    assert text == snapshot(extension_class=JsonSnapshot)


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_document_validates(path):
    doc = _doc(path)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_all_examples_in_one_document():
    doc = _doc(*example_files())
    validate(doc)
    assert {t["name"] for t in doc["tags"]} >= {"shop.orders", "runs"}


def test_workflow_operation_shape():
    doc = _doc(FIXTURES / "api.kflow")
    op = doc["paths"]["/workflows/CountWords"]["post"]
    assert op["operationId"] == "runCountWords"
    assert op["summary"] == "Count the words of a text (default route, default tool name)."
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CountWordsInput"}
    assert set(op["responses"]) == {"200", "202", "422"}
    assert "application/problem+json" in op["responses"]["422"]["content"]
    result = doc["components"]["schemas"]["CountWordsResult"]
    assert result["required"] == ["run_id", "status", "output", "error"]
    assert result["properties"]["output"]["type"] == ["integer", "null"]
    assert result["properties"]["status"]["enum"] == ["completed", "failed"]
    waiting = doc["components"]["schemas"]["CountWordsWaiting"]
    assert waiting["properties"]["status"]["enum"] == ["waiting", "running"]


def test_api_path_method_and_path_parameters():
    doc = _doc(FIXTURES / "api.kflow")
    get = doc["paths"]["/customers/{id}"]["get"]
    params = {(p["in"], p["name"]): p for p in get["parameters"]}
    assert params[("path", "id")]["required"] is True
    assert params[("query", "include_orders")]["required"] is False
    assert params[("query", "include_orders")]["schema"] == {"type": "boolean", "default": False}
    assert "requestBody" not in get
    put = doc["paths"]["/customers/{id}/name"]["put"]
    body = doc["components"]["schemas"]["RenameCustomerInput"]
    assert list(body["properties"]) == ["name"]  # `id` travels in the path
    assert put["requestBody"]["required"] is True


def test_run_endpoints():
    doc = _doc(FIXTURES / "api.kflow")
    assert doc["paths"]["/runs/{run_id}"]["get"]["operationId"] == "getRun"
    sig = doc["paths"]["/runs/{run_id}/signals/{name}"]["post"]
    assert sig["operationId"] == "sendSignal"
    events = doc["paths"]["/runs/{run_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance"}


def test_named_types_are_components():
    doc = _doc(FIXTURES / "types.kflow")
    schemas = doc["components"]["schemas"]
    assert schemas["Ticket"]["properties"]["priority"]["$ref"] == \
        "#/components/schemas/Priority"
    assert schemas["Priority"]["enum"] == ["low", "normal", "high"]


def test_same_route_twice_is_an_error(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.kflow").write_text("workflow Main() -> int {\n  return 1\n}\n")
    with pytest.raises(EmitError, match="POST /workflows/Main"):
        _doc(tmp_path / "a.kflow", tmp_path / "b.kflow")
    (tmp_path / "b.kflow").write_text(
        '@api(path: "/b")\nworkflow Main() -> int {\n  return 2\n}\n')
    doc = _doc(tmp_path / "a.kflow", tmp_path / "b.kflow")
    validate(doc)
    ids = sorted(op["operationId"] for item in doc["paths"].values() for op in item.values())
    assert "runAMain" in ids and "runBMain" in ids
