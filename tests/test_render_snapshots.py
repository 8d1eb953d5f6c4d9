"""Snapshots of the human (no colour) and json rendering of every diagnostic case.

Every file in tests/cases/check/ whose `# check:` directive is not `ok` is checked and
both renderings are snapshotted, so each code the checker produces is pinned down as a
user sees it. Update after an intended change with `python -m pytest
tests/test_render_snapshots.py --snapshot-update` and review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kailash_dsl import render
from kailash_dsl.grammar.parser import parse

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "cases" / "check"
_DIRECTIVE = re.compile(r"^#\s*check:\s*(.+?)\s*$", re.MULTILINE)


def _not_ok_cases() -> list[Path]:
    out = []
    for p in sorted(CASES.rglob("*.kflow")) if CASES.is_dir() else []:
        m = _DIRECTIVE.search(p.read_text(encoding="utf-8"))
        if m and m.group(1).strip() != "ok":
            out.append(p)
    return out


def _stable(text: str) -> str:
    """Machine-independent: no absolute checkout path."""
    root = str(REPO)
    return text.replace(root + "/", "").replace(root, ".")


@pytest.mark.parametrize("case", _not_ok_cases(),
                         ids=lambda p: p.relative_to(CASES).as_posix())
def test_case_renderings(case, snapshot, monkeypatch):
    from kailash_dsl.compiler.api import check_paths

    monkeypatch.chdir(REPO)
    rel = case.relative_to(REPO).as_posix()
    result = check_paths([rel], explain=False)
    assert result.usage_error is None
    assert result.diagnostics, f"{rel} has a non-ok directive but checks clean"
    human = render.render_human(result.diagnostics, result.files, color=False)
    json_text = render.render_json(result.diagnostics, result.files)
    assert _stable(human) == snapshot(name="human")
    assert _stable(json_text) == snapshot(name="json")


SYNTAX_ERRORS = {
    "let_without_name": "workflow Broken(a: int) -> int {\n  let x = a + 1\n  let = 3\n"
                        "  return x\n}\n",
    "unclosed_brace": "workflow W() -> int {\n  let x = [1, 2\n  return 1\n",
    "unterminated_string": 'workflow W() -> str {\n  return "abc\n}\n',
    "bang_negation": "workflow W(a: bool) -> bool {\n  return !a\n}\n",
}


@pytest.mark.parametrize("name", sorted(SYNTAX_ERRORS))
def test_syntax_error_renderings(name, snapshot):
    path = f"{name}.kflow"
    text = SYNTAX_ERRORS[name]
    _, diags = parse(text, path)
    assert diags and all(d.code == "E0001" for d in diags)
    human = render.render_human(diags, 1, color=False, sources={path: text})
    assert human == snapshot(name="human")
    assert render.render_json(diags, 1) == snapshot(name="json")
