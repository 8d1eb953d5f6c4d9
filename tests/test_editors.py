"""Editor support: the VS Code extension (manifest, grammar, snippets, client) and Vim files.

The TextMate grammar is tested with `vscode-tmgrammar-test` (editors/vscode/tests/) when
`npx` and the extension's npm packages are installed (`cd editors/vscode && npm install`),
and skipped with that reason otherwise. The extension's client code is tested with
`node --test` against stubs of the VS Code API (needs only `node`). Vim files are tested
headless when `vim` is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VSCODE = REPO / "editors" / "vscode"
VIM = REPO / "editors" / "vim"


def _json(name: str) -> dict:
    return json.loads((VSCODE / name).read_text(encoding="utf-8"))


def test_manifest_contributes_language_grammar_snippets_configuration() -> None:
    pkg = _json("package.json")
    contrib = pkg["contributes"]
    lang = contrib["languages"][0]
    assert lang["id"] == "kflow" and ".kflow" in lang["extensions"]
    assert (VSCODE / lang["configuration"]).is_file()
    grammar = contrib["grammars"][0]
    assert grammar["scopeName"] == "source.kflow" and (VSCODE / grammar["path"]).is_file()
    assert (VSCODE / contrib["snippets"][0]["path"]).is_file()
    props = contrib["configuration"]["properties"]
    assert props["kflow.server.path"]["default"] == "kflow"
    assert props["kflow.server.args"]["default"] == ["lsp"]
    assert (VSCODE / pkg["main"]).is_file()
    assert "vscode-languageclient" in pkg["dependencies"]
    assert {"vscode-tmgrammar-test", "@vscode/vsce"} <= set(pkg["devDependencies"])


def test_language_configuration() -> None:
    conf = _json("language-configuration.json")
    assert conf["comments"]["lineComment"] == "#"
    assert ["{", "}"] in conf["brackets"] and ["(", ")"] in conf["brackets"]
    opens = {p["open"] for p in conf["autoClosingPairs"]}
    assert {"{", "[", "(", '"'} <= opens
    inc = re.compile(conf["indentationRules"]["increaseIndentPattern"])
    dec = re.compile(conf["indentationRules"]["decreaseIndentPattern"])
    assert inc.search("workflow W() -> int {") and inc.search("  let x = F(")
    assert not inc.search("  let x = {a: 1}") and not inc.search("# {")
    assert dec.search("  }") and not dec.search("  let x = 1")


def test_snippets_cover_the_main_constructs() -> None:
    snippets = _json("snippets/kflow.json")
    prefixes = set()
    for s in snippets.values():
        p = s["prefix"]
        prefixes.update(p if isinstance(p, list) else [p])
        assert s["body"] and s["description"]
    assert {"node", "workflow", "transaction", "for"} <= prefixes
    bodies = {k: "\n".join(v["body"]) for k, v in snippets.items()}
    assert "yield" in bodies["for yield"]
    assert "saga,2pc" in bodies["transaction"]


def test_grammar_scopes_every_token_class() -> None:
    text = (VSCODE / "syntaxes" / "kflow.tmLanguage.json").read_text(encoding="utf-8")
    grammar = json.loads(text)
    assert grammar["scopeName"] == "source.kflow"
    for scope in ("keyword.control", "keyword.other.contextual", "support.type.primitive",
                  "storage.type.node", "storage.type.workflow", "storage.type.type",
                  "storage.type.enum", "entity.name.function.decorator",
                  "string.quoted.double", "string.quoted.triple", "meta.interpolation",
                  "constant.numeric.duration", "constant.numeric.integer",
                  "constant.numeric.float", "comment.line.number-sign",
                  "comment.line.documentation", "constant.character.escape"):
        assert scope in text, scope
    # every regex in the grammar compiles (Python's re is close enough to Oniguruma here)
    for m in re.finditer(r'"(?:match|begin|end)": "((?:[^"\\]|\\.)*)"', text):
        re.compile(json.loads(f'"{m.group(1)}"'))


def test_grammar_unit_tests_with_vscode_tmgrammar_test() -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx not found: install Node.js to run the TextMate grammar tests")
    tool = VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test"
    if not tool.exists():
        pytest.skip("vscode-tmgrammar-test not installed: run `npm install` in editors/vscode")
    tests = sorted(VSCODE.glob("tests/*.test.kflow")) + sorted(VSCODE.glob("tests/*.tmtest"))
    assert len(tests) >= 3
    proc = subprocess.run([str(tool), *[str(t.relative_to(VSCODE)) for t in tests]],
                          cwd=VSCODE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("run successfuly") == len(tests), proc.stdout


def test_grammar_tests_fail_on_a_wrong_scope(tmp_path: Path) -> None:
    """The harness really checks: a deliberately wrong assertion must fail."""
    tool = VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test"
    if shutil.which("npx") is None or not tool.exists():
        pytest.skip("vscode-tmgrammar-test not installed: run `npm install` in editors/vscode")
    bad = VSCODE / "tests" / "_wrong.tmtest"
    bad.write_text('# SYNTAX TEST "source.kflow"\nlet x = 1\n# <--- constant.numeric.kflow\n')
    try:
        proc = subprocess.run([str(tool), "tests/_wrong.tmtest"], cwd=VSCODE,
                              capture_output=True, text=True, timeout=300)
    finally:
        bad.unlink()
    assert proc.returncode != 0


def test_extension_client_with_stubbed_vscode() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the extension's client tests need Node.js")
    proc = subprocess.run([node, "--test", "tests/extension.test.js"], cwd=VSCODE,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^# pass [1-9]", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^# fail 0", proc.stdout, re.MULTILINE), proc.stdout


def test_vsce_packages_the_extension(tmp_path: Path) -> None:
    import zipfile

    vsce = VSCODE / "node_modules" / ".bin" / "vsce"
    if shutil.which("node") is None or not vsce.exists():
        pytest.skip("@vscode/vsce not installed: run `npm install` in editors/vscode")
    out = tmp_path / "kflow.vsix"
    proc = subprocess.run([str(vsce), "package", "--out", str(out)], cwd=VSCODE,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = set(zipfile.ZipFile(out).namelist())
    for required in ("extension/package.json", "extension/extension.js",
                     "extension/language-configuration.json",
                     "extension/syntaxes/kflow.tmLanguage.json",
                     "extension/snippets/kflow.json",
                     "extension/node_modules/vscode-languageclient/package.json"):
        assert required in names, required
    assert not any(n.startswith("extension/tests/") for n in names)
    assert not any("/vscode-tmgrammar-test/" in n for n in names)


def test_gitignore_keeps_build_outputs_out() -> None:
    ignore = (REPO / ".gitignore").read_text().splitlines()
    assert "node_modules/" in ignore and "*.vsix" in ignore


# ----------------------------------------------------------------------------- vim

VIM_SAMPLE = '''## Doc comment
@impl("m:f")
node Charge(amount: float) -> {id: str}
workflow W(xs: list[int]) -> json {
  transaction saga { let c = Charge(amount: 1.5) }
  let saga = 1
  let a: Approval? = wait "approval" timeout 24h
  let timeout = 3
  let s = "x ${len(xs)} \\n"  # tail
  return null
}
'''

# (line, text to find on it, expected syntax group)
VIM_EXPECT = [
    (1, "## Doc", "kflowDocComment"),
    (2, "@impl", "kflowAttribute"),
    (3, "node", "kflowDefine"),
    (3, "Charge", "kflowFuncName"),
    (3, "float", "kflowType"),
    (4, "workflow", "kflowDefine"),
    (4, "list", "kflowType"),
    (5, "transaction", "kflowStatement"),
    (5, "saga", "kflowTxKind"),
    (5, "let", "kflowDeclare"),
    (5, "1.5", "kflowFloat"),
    (6, "saga", ""),
    (7, "Approval", "kflowTypeRef"),
    (7, "wait", "kflowStatement"),
    (7, '"approval"', "kflowString"),
    (7, "timeout", "kflowWaitTimeout"),
    (7, "24h", "kflowDuration"),
    (8, "timeout", ""),
    (9, "${", "kflowInterpDelim"),
    (9, "len", "kflowBuiltin"),
    (9, "\\n", "kflowEscape"),
    (9, "# tail", "kflowComment"),
    (10, "null", "kflowNull"),
]


def test_vim_syntax_and_ftdetect(tmp_path: Path) -> None:
    vim = shutil.which("vim")
    if vim is None:
        pytest.skip("vim not found: the Vim syntax test needs vim")
    src = tmp_path / "sample.kflow"
    src.write_text(VIM_SAMPLE)
    lines = VIM_SAMPLE.splitlines()
    probes = []
    for ln, needle, _ in VIM_EXPECT:
        probes.append(f"[{ln}, {lines[ln - 1].index(needle) + 1}]")
    out = tmp_path / "out.txt"
    script = tmp_path / "probe.vim"
    script.write_text(f"""set nocompatible
let &rtp = '{VIM}' . ',' . &rtp
filetype plugin on
syntax on
edit {src}
let out = ['ft=' . &filetype . ' sw=' . &shiftwidth . ' cms=' . &commentstring]
for [l, c] in [{", ".join(probes)}]
  call add(out, synIDattr(synID(l, c, 1), 'name'))
endfor
call writefile(out, '{out}')
qa!
""")
    subprocess.run([vim, "-Nu", "NONE", "-Es", "-S", str(script)], timeout=60,
                   capture_output=True)
    got = out.read_text().splitlines()
    assert got[0] == "ft=kflow sw=2 cms=# %s"
    mismatches = [(ln, needle, want, have) for (ln, needle, want), have
                  in zip(VIM_EXPECT, got[1:]) if want != have]
    assert not mismatches


def test_vim_kflowfmt_command(tmp_path: Path) -> None:
    import os
    import sys

    vim = shutil.which("vim")
    if vim is None:
        pytest.skip("vim not found: the Vim :KflowFmt test needs vim")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "kflow"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" '
                       f'-m kailash_dsl "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")

    def run(source: str) -> tuple[list[str], str]:
        src = tmp_path / "f.kflow"
        src.write_text(source)
        out = tmp_path / "out.txt"
        script = tmp_path / "fmt.vim"
        script.write_text(f"""set nocompatible
let &rtp = '{VIM}' . ',' . &rtp
filetype plugin on
edit {src}
redir => g:msgs
silent! KflowFmt
redir END
call writefile(getline(1, '$') + ['--', g:msgs], '{out}')
qa!
""")
        subprocess.run([vim, "-Nu", "NONE", "-Es", "-S", str(script)], timeout=120,
                       capture_output=True, env=env)
        lines = out.read_text().splitlines()
        sep = lines.index("--")
        return lines[:sep], "\n".join(lines[sep + 1:])

    lines, _ = run("const A=1\nnode  F() -> int\n")
    assert lines == ["const A = 1", "", "node F() -> int"]
    broken = "workflow W( {\n"
    lines, msgs = run(broken)
    assert lines == ["workflow W( {"]  # untouched
    assert "E0001" in msgs
