"""std.file implementations, called directly, on a temporary folder."""

from __future__ import annotations

import json
import os
import stat

import pytest

from kailash_dsl.stdlib import file as F
from kailash_dsl.stdlib.errors import NodeError


class Ctx:
    def __init__(self, base_dir=None):
        self.base_dir = str(base_dir) if base_dir else None
        self.lines = []

    def log(self, msg):
        self.lines.append(msg)


def test_text_round_trip_relative_to_ctx_base_dir(tmp_path):
    ctx = Ctx(tmp_path)
    out = F.write_text("sub/dir/a.txt", "héllo\n", ctx=ctx)
    assert out == {"path": str(tmp_path / "sub/dir/a.txt"), "size": len("héllo\n".encode())}
    assert (tmp_path / "sub/dir/a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert F.read_text("sub/dir/a.txt", ctx=ctx) == "héllo\n"
    assert ctx.lines and "a.txt" in ctx.lines[0]


def test_relative_without_ctx_uses_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KFLOW_BASE_DIR", raising=False)
    F.write_text("c.txt", "x")
    assert (tmp_path / "c.txt").read_text() == "x"
    assert F.read_text(str(tmp_path / "c.txt")) == "x"


def test_missing_file_kind(tmp_path):
    with pytest.raises(NodeError) as e:
        F.read_text("nope.txt", ctx=Ctx(tmp_path))
    assert e.value.kind == "FileNotFound" and "nope.txt" in str(e.value)


def test_atomic_write_leaves_no_temp_and_keeps_mode(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    F.write_text(str(target), "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(F.os, "replace", boom)
    with pytest.raises(OSError):
        F.write_text(str(target), "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_json_round_trip(tmp_path):
    ctx = Ctx(tmp_path)
    value = {"a": [1, 2], "b": {"c": None}}
    F.write_json("v.json", value, ctx=ctx)
    assert json.loads((tmp_path / "v.json").read_text()) == value
    assert F.read_json("v.json", ctx=ctx) == value
    F.write_json("w.json", value, indent=0, ctx=ctx)
    assert (tmp_path / "w.json").read_text() == '{"a":[1,2],"b":{"c":null}}\n'


def test_read_json_invalid(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(NodeError) as e:
        F.read_json("bad.json", ctx=Ctx(tmp_path))
    assert e.value.kind == "JsonError"


def test_read_csv(tmp_path):
    (tmp_path / "in.csv").write_text(
        "\ufeffsku, qty ,note\nA1,2,\"has, comma\"\n\nB2,5\n", encoding="utf-8"
    )
    rows = F.read_csv("in.csv", ctx=Ctx(tmp_path))
    assert rows == [
        {"sku": "A1", "qty": "2", "note": "has, comma"},
        {"sku": "B2", "qty": "5", "note": ""},
    ]


def test_read_csv_semicolon_and_empty(tmp_path):
    (tmp_path / "s.csv").write_text("a;b\n1;2\n")
    assert F.read_csv("s.csv", delimiter=";", ctx=Ctx(tmp_path)) == [{"a": "1", "b": "2"}]
    (tmp_path / "e.csv").write_text("")
    assert F.read_csv("e.csv", ctx=Ctx(tmp_path)) == []


def test_read_csv_too_many_values(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2,3\n")
    with pytest.raises(NodeError) as e:
        F.read_csv("x.csv", ctx=Ctx(tmp_path))
    assert e.value.kind == "CsvError" and "line 2" in str(e.value)


def test_write_csv_columns_and_cells(tmp_path):
    ctx = Ctx(tmp_path)
    rows = [{"sku": "A", "qty": 2, "ok": True}, {"sku": "B", "tags": ["x"], "qty": None}]
    out = F.write_csv("out.csv", rows, ctx=ctx)
    assert out["count"] == 2
    assert (tmp_path / "out.csv").read_text() == 'sku,qty,ok,tags\nA,2,true,\nB,,,"[""x""]"\n'
    F.write_csv("two.csv", rows, columns=["qty", "sku"], ctx=ctx)
    assert (tmp_path / "two.csv").read_text() == "qty,sku\n2,A\n,B\n"
    assert F.read_csv("two.csv", ctx=ctx) == [{"qty": "2", "sku": "A"}, {"qty": "", "sku": "B"}]


def test_write_csv_rejects_non_records(tmp_path):
    with pytest.raises(NodeError) as e:
        F.write_csv("x.csv", [1, 2], ctx=Ctx(tmp_path))
    assert e.value.kind == "CsvError"
