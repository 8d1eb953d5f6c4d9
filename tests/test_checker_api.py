"""The front end's library API: check_paths, check, load_program, the loader's cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kailash_dsl
from kailash_dsl.compiler import loader
from kailash_dsl.compiler.api import check, check_paths, check_source, load_program

OK = "workflow W() -> int {\n  return 1\n}\n"
BAD = "workflow W() -> int {\n  return \"s\"\n}\n"
TX = ('@impl("m:c")\n@effect(write)\nnode Ship() -> {t: str}\n'
      "workflow W() {\n  transaction {\n    let s = Ship()\n  }\n}\n")


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_folders_are_searched_recursively_and_hidden_folders_skipped(tmp_path):
    write(tmp_path, "a.kflow", OK)
    write(tmp_path, "sub/deeper/b.kflow", BAD)
    write(tmp_path, ".kflow/ignored.kflow", BAD)
    write(tmp_path, "notes.txt", "not kflow")
    result = check_paths([str(tmp_path)])
    assert result.usage_error is None and result.files == 2
    assert [(d.code, Path(d.span.file).name) for d in result.diagnostics] == [("E0205", "b.kflow")]
    assert result.errors == 1 and result.warnings == 0


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = check_paths([str(tmp_path / "nope.kflow")])
    assert result.usage_error and "nope.kflow" in result.usage_error
    with pytest.raises(FileNotFoundError):
        check(str(tmp_path / "nope.kflow"))
    with pytest.raises(FileNotFoundError):
        load_program(str(tmp_path / "nope.kflow"))


def test_diagnostics_are_sorted_and_unique(tmp_path):
    a = write(tmp_path, "a.kflow", "workflow W() -> int {\n  let x = zz\n  return yy\n}\n")
    result = check_paths([str(a), str(a), str(tmp_path)])
    assert result.files == 1
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("E0101", 2), ("E0101", 3)]


def test_explanations_only_when_asked(tmp_path):
    f = write(tmp_path, "tx.kflow", TX)
    assert check_paths([str(f)]).explanations == []
    (span, text), = check_paths([str(f)], explain=True).explanations
    assert span.line == 5 and text == ("transaction at 5:3: saga — `Ship` is not "
                                       "@transactional; `Ship` is the pivot (the last write "
                                       "step, no @compensate)")


def test_package_level_check(tmp_path):
    f = write(tmp_path, "bad.kflow", BAD)
    diags = kailash_dsl.check([str(f)])
    assert [d.code for d in diags] == ["E0205"]
    assert kailash_dsl.check(str(write(tmp_path, "ok.kflow", OK))) == []


def test_load_program_of_a_file_with_errors_still_returns_a_program(tmp_path):
    p = load_program(str(write(tmp_path, "bad.kflow", BAD)))
    assert p.has_errors and [w.name for w in p.workflows()] == ["W"]
    p = load_program(str(write(tmp_path, "syntax.kflow", "workflow (\n")))
    assert p.has_errors and p.workflows() == [] and p.diagnostics[0].code == "E0001"


def test_check_source_resolves_imports_next_to_its_path(tmp_path):
    write(tmp_path, "lib.kflow", "const K = 4\n")
    p = check_source('import "./lib.kflow" as lib\nconst J = lib.K + 1\n',
                     str(tmp_path / "virtual.kflow"))
    assert not p.diagnostics and p.entry.scope["J"].value == 5


def test_each_file_is_parsed_once_until_it_changes(tmp_path, monkeypatch):
    f = write(tmp_path, "cached.kflow", OK)
    calls = []
    from kailash_dsl.grammar import parser

    real = parser.parse_file

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(parser, "parse_file", counting)
    check_paths([str(f)])
    check_paths([str(f)])
    load_program(str(f))
    assert len(calls) == 1
    time.sleep(0.01)
    f.write_text(BAD, encoding="utf-8")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert [d.code for d in check_paths([str(f)]).diagnostics] == ["E0205"]
    assert len(calls) == 2
    loader.clear_cache()


def test_std_modules_are_listed():
    assert "std.core" in loader.std_modules()


def test_the_check_path_imports_no_rich_typer_or_asyncio(tmp_path):
    f = write(tmp_path, "ok.kflow", OK)
    code = ("import sys\nfrom kailash_dsl.compiler.api import check_paths\n"
            f"check_paths([{str(f)!r}])\n"
            "bad = [m for m in ('rich', 'typer', 'asyncio') if m in sys.modules]\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
