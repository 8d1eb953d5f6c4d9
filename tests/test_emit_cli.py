"""`kflow emit python|openapi|mcp|jsonschema FILE... [-o OUT]` on the command line."""

from __future__ import annotations

import json
import os

import pytest
from emit_fixtures.support import EXAMPLES, FIXTURES

from kailash_dsl.emit import emit_text

ORDERS = EXAMPLES / "orders" / "orders.kflow"


@pytest.mark.parametrize("target", ["jsonschema", "openapi", "mcp", "python"])
def test_stdout_is_the_emitted_text(kflow, target):
    res = kflow("emit", target, ORDERS)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == emit_text(target, [str(ORDERS)])
    if target != "python":
        json.loads(res.stdout)


@pytest.mark.parametrize("target", ["jsonschema", "openapi", "mcp", "python"])
def test_out_file(kflow, target, tmp_path):
    out = tmp_path / f"out.{target}"
    res = kflow("emit", target, ORDERS, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert out.read_text(encoding="utf-8") == emit_text(target, [str(ORDERS)])
    assert bool(os.stat(out).st_mode & 0o100) == (target == "python")


def test_several_files(kflow):
    res = kflow("emit", "openapi", ORDERS, FIXTURES / "api.kflow")
    assert res.exit_code == 0, res.stderr
    paths = json.loads(res.stdout)["paths"]
    assert "/orders" in paths and "/customers/{id}" in paths
    res = kflow("emit", "mcp", ORDERS, FIXTURES / "api.kflow")
    names = [t["name"] for t in json.loads(res.stdout)["tools"]]
    assert names[0] == "fulfil_order" and "get_customer" in names


def test_usage_errors(kflow, tmp_path):
    res = kflow("emit", "wsdl", ORDERS)
    assert res.exit_code == 2 and "unknown emit target" in res.stderr
    res = kflow("emit", "openapi", tmp_path / "missing.kflow")
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = kflow("emit", "python", ORDERS, FIXTURES / "api.kflow")
    assert res.exit_code == 2 and "exactly one FILE" in res.stderr


def test_a_program_with_errors_is_refused(kflow, tmp_path):
    bad = tmp_path / "bad.kflow"
    bad.write_text("workflow W() -> int {\n  return \"no\"\n}\n", encoding="utf-8")
    res = kflow("emit", "jsonschema", bad)
    assert res.exit_code == 1
    assert "has errors" in res.stderr and "E0205" in res.stderr
    assert res.stdout == ""


def test_as_a_subprocess(kflow_proc, tmp_path):
    res = kflow_proc("emit", "mcp", ORDERS, cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["tools"][0]["name"] == "fulfil_order"


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    import subprocess
    import sys

    from emit_fixtures.support import REPO

    outputs = set()
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        texts = []
        for target in ("jsonschema", "openapi", "mcp", "python"):
            files = [str(ORDERS)] if target == "python" else \
                [str(ORDERS), str(FIXTURES / "features.kflow")]
            proc = subprocess.run([sys.executable, "-m", "kailash_dsl", "emit", target, *files],
                                  env=env, capture_output=True, text=True, cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
            texts.append(proc.stdout)
        outputs.add(tuple(texts))
    assert len(outputs) == 1
