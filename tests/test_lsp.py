"""`kflow lsp` end to end: a real `python -m kailash_dsl lsp` process, driven over stdio
by pygls's language client, for every feature. Positions are UTF-16 (the LSP default);
documents with emoji before the cursor check the conversion.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from lsprotocol import types as T
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

REPO = Path(__file__).resolve().parent.parent
STD_CORE = REPO / "kailash_dsl" / "stdlib" / "core.kflow"

LIB = '''## Square a number.
workflow Square(n: int) -> int {
  return n * n
}
'''

MAIN = '''import std.core
import "./lib.kflow" as lib

type Item { sku: str, qty: int = 1 }

## Charge a card; returns the processor's charge id.
@impl("shop.payments:charge")
@effect(write, resource: "payments")
node Charge(amount: float, currency: str = "USD") -> {charge_id: str, status: str}

workflow Pay(item: Item, amount: float) -> str {
  let c = Charge(amount: amount)
  let sq = lib.Square(n: item.qty)
  core.Log(message: "charged ${c.charge_id}")
  let label = "😀 paid 🎉" + c.charge_id
  return label + str(sq)
}
'''


def utf16_pos(text: str, needle: str, nth: int = 0, offset: int = 0) -> T.Position:
    """The LSP position (UTF-16) of the ``nth`` occurrence of ``needle`` plus ``offset``
    characters."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    i += offset
    line = text.count("\n", 0, i)
    start = text.rfind("\n", 0, i) + 1
    return T.Position(line=line, character=len(text[start:i].encode("utf-16-le")) // 2)


class Session:
    """A language client on a background event loop, with blocking helpers."""

    def __init__(self, root: Path, capabilities: T.ClientCapabilities | None = None):
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.diagnostics: dict[str, list[T.PublishDiagnosticsParams]] = {}
        self.messages: list[T.ShowMessageParams] = []
        self.cond = threading.Condition()
        self.client = LanguageClient("kflow-tests", "1")
        self.versions: dict[str, int] = {}

        @self.client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _diags(params: T.PublishDiagnosticsParams) -> None:
            with self.cond:
                self.diagnostics.setdefault(params.uri, []).append(params)
                self.cond.notify_all()

        @self.client.feature(T.WINDOW_SHOW_MESSAGE)
        def _msg(params: T.ShowMessageParams) -> None:
            self.messages.append(params)

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        env["KFLOW_LSP_DEBOUNCE"] = "0.2"
        self.run(self.client.start_io(sys.executable, "-m", "kailash_dsl", "lsp", env=env,
                                      cwd=str(root)))
        result = self.run(self.client.initialize_async(T.InitializeParams(
            capabilities=capabilities or T.ClientCapabilities(),
            root_uri=from_fs_path(str(root)),
            process_id=os.getpid())))
        self.capabilities = result.capabilities
        self.notify(self.client.initialized, T.InitializedParams())

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def notify(self, fn, params) -> None:
        """Send a notification from the client's own loop (its writer is not thread-safe)."""
        async def send():
            fn(params)
        self.run(send())

    def close(self) -> None:
        try:
            self.run(self.client.shutdown_async(None), timeout=10)
            self.notify(self.client.exit, None)
            self.run(self.client.stop(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    # -- documents ------------------------------------------------------------------
    def open(self, path: Path, text: str | None = None) -> str:
        if text is not None:
            path.write_text(text, encoding="utf-8")
        uri = from_fs_path(str(path))
        self.versions[uri] = 1
        self.notify(self.client.text_document_did_open, T.DidOpenTextDocumentParams(
            text_document=T.TextDocumentItem(uri=uri, language_id="kflow", version=1,
                                             text=path.read_text(encoding="utf-8"))))
        return uri

    def change(self, uri: str, text: str) -> int:
        self.versions[uri] += 1
        v = self.versions[uri]
        self.notify(self.client.text_document_did_change, T.DidChangeTextDocumentParams(
            text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=v),
            content_changes=[T.TextDocumentContentChangeWholeDocument(text=text)]))
        return v

    def close_doc(self, uri: str) -> None:
        self.notify(self.client.text_document_did_close, T.DidCloseTextDocumentParams(
            text_document=T.TextDocumentIdentifier(uri=uri)))

    def wait_diagnostics(self, uri: str, version: int | None = None,
                         timeout: float = 20) -> T.PublishDiagnosticsParams:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for p in reversed(self.diagnostics.get(uri, [])):
                    if version is None or p.version == version:
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no diagnostics for {uri} version {version}: "
                                         f"{self.diagnostics.get(uri)}")
                self.cond.wait(left)

    # -- requests -----------------------------------------------------------------------
    def doc(self, uri: str) -> T.TextDocumentIdentifier:
        return T.TextDocumentIdentifier(uri=uri)

    def hover(self, uri, pos):
        return self.run(self.client.text_document_hover_async(
            T.HoverParams(text_document=self.doc(uri), position=pos)))

    def definition(self, uri, pos):
        return self.run(self.client.text_document_definition_async(
            T.DefinitionParams(text_document=self.doc(uri), position=pos)))

    def references(self, uri, pos, include_declaration=True):
        return self.run(self.client.text_document_references_async(T.ReferenceParams(
            text_document=self.doc(uri), position=pos,
            context=T.ReferenceContext(include_declaration=include_declaration))))

    def completion(self, uri, pos) -> list[T.CompletionItem]:
        res = self.run(self.client.text_document_completion_async(
            T.CompletionParams(text_document=self.doc(uri), position=pos)))
        return res.items if isinstance(res, T.CompletionList) else list(res or [])

    def symbols(self, uri):
        return self.run(self.client.text_document_document_symbol_async(
            T.DocumentSymbolParams(text_document=self.doc(uri))))

    def formatting(self, uri):
        return self.run(self.client.text_document_formatting_async(T.DocumentFormattingParams(
            text_document=self.doc(uri),
            options=T.FormattingOptions(tab_size=2, insert_spaces=True))))

    def prepare_rename(self, uri, pos):
        return self.run(self.client.text_document_prepare_rename_async(
            T.PrepareRenameParams(text_document=self.doc(uri), position=pos)))

    def rename(self, uri, pos, new_name):
        return self.run(self.client.text_document_rename_async(
            T.RenameParams(text_document=self.doc(uri), position=pos, new_name=new_name)))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("lspws")
    (root / "lib.kflow").write_text(LIB, encoding="utf-8")
    s = Session(root)
    yield s
    s.close()


@pytest.fixture(scope="module")
def main_doc(ws):
    uri = ws.open(ws.root / "main.kflow", MAIN)
    ws.wait_diagnostics(uri, 1)
    return uri


def _apply(text: str, edits: list[T.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions) to ``text``."""
    lines = text.split("\n")

    def offset(p: T.Position) -> int:
        before = sum(len(ln) + 1 for ln in lines[:p.line])
        line = lines[p.line] if p.line < len(lines) else ""
        units = 0
        for i, ch in enumerate(line):
            if units >= p.character:
                return before + i
            units += len(ch.encode("utf-16-le")) // 2
        return before + len(line)

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                    reverse=True):
        a, b = offset(e.range.start), offset(e.range.end)
        text = text[:a] + e.new_text + text[b:]
    return text


# ----------------------------------------------------------------------------- tests

def test_server_capabilities(ws) -> None:
    caps = ws.capabilities
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.document_symbol_provider and caps.document_formatting_provider
    assert caps.rename_provider and caps.completion_provider
    assert set(caps.completion_provider.trigger_characters) >= {".", "@"}
    assert caps.position_encoding in (None, T.PositionEncodingKind.Utf16)


def test_clean_document_has_no_diagnostics(ws, main_doc) -> None:
    assert not ws.wait_diagnostics(main_doc, 1).diagnostics


def test_diagnostics_on_open_with_utf16_ranges(ws) -> None:
    text = 'workflow W() -> int {\n  let s = "🎉🎉"\n  return s + missing\n}\n'
    uri = ws.open(ws.root / "diag.kflow", text)
    diags = ws.wait_diagnostics(uri, 1).diagnostics
    codes = {d.code for d in diags}
    assert "E0101" in codes, diags
    d = next(d for d in diags if d.code == "E0101")
    assert d.range.start == utf16_pos(text, "missing")
    assert d.range.end == utf16_pos(text, "missing", offset=len("missing"))
    assert d.severity == T.DiagnosticSeverity.Error and d.source == "kflow"
    ws.close_doc(uri)


def test_syntax_error_diagnostic(ws) -> None:
    text = "workflow W() -> int {\n  let = 3\n}\n"
    uri = ws.open(ws.root / "syntax.kflow", text)
    diags = ws.wait_diagnostics(uri, 1).diagnostics
    assert [d.code for d in diags] == ["E0001"]
    assert diags[0].range.start == T.Position(line=1, character=6)
    ws.close_doc(uri)


def test_diagnostics_follow_changes_debounced(ws) -> None:
    good = "workflow W(a: int) -> int {\n  return a\n}\n"
    uri = ws.open(ws.root / "change.kflow", good)
    assert not ws.wait_diagnostics(uri, 1).diagnostics
    ws.change(uri, good.replace("return a", "return b"))
    ws.change(uri, good.replace("return a", "return c"))
    v = ws.change(uri, good.replace("return a", 'return "x"'))
    last = ws.wait_diagnostics(uri, v)
    assert [d.code for d in last.diagnostics] == ["E0205"] or \
        [d.code for d in last.diagnostics] == ["E0201"], last.diagnostics
    published = [p.version for p in ws.diagnostics[uri]]
    assert v - 1 not in published and v - 2 not in published, published  # debounced
    v = ws.change(uri, good)
    assert not ws.wait_diagnostics(uri, v).diagnostics
    ws.close_doc(uri)


def test_warning_is_a_warning(ws) -> None:
    text = "workflow W() -> int {\n  let unused = 1\n  return 2\n}\n"
    uri = ws.open(ws.root / "warn.kflow", text)
    diags = ws.wait_diagnostics(uri, 1).diagnostics
    w = [d for d in diags if d.code == "W0001"]
    assert w and w[0].severity == T.DiagnosticSeverity.Warning
    assert list(w[0].tags) == [T.DiagnosticTag.Unnecessary]
    ws.close_doc(uri)


def test_hover_binding_type(ws, main_doc) -> None:
    h = ws.hover(main_doc, utf16_pos(MAIN, "c.charge_id", 1))
    assert "let c: {charge_id: str, status: str}" in h.contents.value
    assert h.range.start == utf16_pos(MAIN, "c.charge_id", 1)


def test_hover_node_signature_with_doc(ws, main_doc) -> None:
    h = ws.hover(main_doc, utf16_pos(MAIN, "Charge(amount: amount)", offset=2))
    value = h.contents.value
    assert 'node Charge(amount: float, currency: str = "USD") -> ' \
           "{charge_id: str, status: str}" in value
    assert "Charge a card; returns the processor's charge id." in value
    assert "effect `write` on `payments`" in value


def test_hover_workflow_signature_across_import(ws, main_doc) -> None:
    h = ws.hover(main_doc, utf16_pos(MAIN, "Square(n:", offset=1))
    assert "workflow Square(n: int) -> int" in h.contents.value
    assert "Square a number." in h.contents.value


def test_hover_field_param_and_attribute(ws, main_doc) -> None:
    h = ws.hover(main_doc, utf16_pos(MAIN, "charge_id}", offset=1))
    assert "charge_id: str" in h.contents.value
    h = ws.hover(main_doc, utf16_pos(MAIN, "amount: amount", offset=1))
    assert "amount: float" in h.contents.value and "parameter of node `Charge`" in \
        h.contents.value
    h = ws.hover(main_doc, utf16_pos(MAIN, "@effect", offset=2))
    assert "@effect" in h.contents.value


def test_hover_after_emoji_on_the_same_line(ws, main_doc) -> None:
    pos = utf16_pos(MAIN, "+ c.charge_id", offset=2)
    # the emoji are surrogate pairs: the UTF-16 column is larger than the code-point one
    line = MAIN.split("\n")[pos.line]
    assert pos.character == line.index("+ c.") + 2 + 2
    h = ws.hover(main_doc, pos)
    assert "let c:" in h.contents.value
    assert h.range.start == pos
    h = ws.hover(main_doc, utf16_pos(MAIN, "charge_id\n  return", offset=1))
    assert "charge_id: str" in h.contents.value


def test_definition_local_binding(ws, main_doc) -> None:
    loc = ws.definition(main_doc, utf16_pos(MAIN, "return label", offset=8))
    loc = loc[0] if isinstance(loc, list) else loc
    assert loc.uri == main_doc
    assert loc.range.start == utf16_pos(MAIN, "label =")


def test_definition_node_and_type(ws, main_doc) -> None:
    loc = ws.definition(main_doc, utf16_pos(MAIN, "Charge(amount: amount)", offset=1))
    loc = loc[0] if isinstance(loc, list) else loc
    assert loc.range.start == utf16_pos(MAIN, "Charge(amount: float")
    loc = ws.definition(main_doc, utf16_pos(MAIN, "item: Item", offset=7))
    loc = loc[0] if isinstance(loc, list) else loc
    assert loc.range.start == utf16_pos(MAIN, "Item {")


def test_definition_across_import(ws, main_doc) -> None:
    loc = ws.definition(main_doc, utf16_pos(MAIN, "Square(n:", offset=1))
    loc = loc[0] if isinstance(loc, list) else loc
    assert loc.uri == from_fs_path(str(ws.root / "lib.kflow"))
    assert loc.range.start == utf16_pos(LIB, "Square(n")


def test_definition_into_std(ws, main_doc) -> None:
    loc = ws.definition(main_doc, utf16_pos(MAIN, "Log(message", offset=1))
    loc = loc[0] if isinstance(loc, list) else loc
    assert loc.uri == from_fs_path(str(STD_CORE))
    std_text = STD_CORE.read_text(encoding="utf-8")
    assert loc.range.start == utf16_pos(std_text, "Log(")


def test_references(ws, main_doc) -> None:
    refs = ws.references(main_doc, utf16_pos(MAIN, "let c =", offset=4))
    starts = sorted((r.range.start.line, r.range.start.character) for r in refs)
    assert len(starts) == 3  # the `let`, inside `${...}`, and in the concatenation
    assert (utf16_pos(MAIN, "c =").line, utf16_pos(MAIN, "c =").character) in starts


def _labels(items) -> set[str]:
    return {i.label for i in items}


def test_completion_names_and_keywords(ws, main_doc) -> None:
    text = MAIN.replace("  return label + str(sq)\n", "  return label\n  \n")
    v = ws.change(main_doc, text)
    ws.wait_diagnostics(main_doc, v)
    pos = utf16_pos(text, "  \n}", offset=2)
    labels = _labels(ws.completion(main_doc, pos))
    assert {"Charge", "Item", "core", "lib", "let", "transaction", "len"} <= labels
    assert {"c", "sq", "label", "amount", "item"} <= labels  # bindings in scope
    v = ws.change(main_doc, MAIN)
    ws.wait_diagnostics(main_doc, v)


def test_completion_argument_names_at_a_call(ws, main_doc) -> None:
    text = MAIN.replace("  return label + str(sq)\n", "  let d = Charge(\n  return label\n")
    ws.change(main_doc, text)  # does not parse: completion uses the last good analysis
    items = ws.completion(main_doc, utf16_pos(text, "Charge(\n", offset=7))
    params = {i.label: i for i in items if i.kind == T.CompletionItemKind.Property}
    assert set(params) == {"amount", "currency"}
    assert params["amount"].insert_text == "amount: "
    text2 = MAIN.replace("  return label + str(sq)\n", "  let d = Charge(amount: 1.0, \n  return label\n")
    ws.change(main_doc, text2)
    items = ws.completion(main_doc, utf16_pos(text2, ", \n", offset=2))
    params = {i.label for i in items if i.kind == T.CompletionItemKind.Property}
    assert params == {"currency"}
    v = ws.change(main_doc, MAIN)
    ws.wait_diagnostics(main_doc, v)


def test_completion_fields_after_dot(ws, main_doc) -> None:
    text = MAIN.replace("  return label + str(sq)\n", "  let z = c.\n  return label\n")
    ws.change(main_doc, text)
    items = ws.completion(main_doc, utf16_pos(text, "c.\n", offset=2))
    assert _labels(items) == {"charge_id", "status"}
    assert all(i.kind == T.CompletionItemKind.Field for i in items)
    text = MAIN.replace("  return label + str(sq)\n", "  let z = item.\n  return label\n")
    ws.change(main_doc, text)
    assert _labels(ws.completion(main_doc, utf16_pos(text, "item.\n", offset=5))) == \
        {"sku", "qty"}
    text = MAIN.replace("  return label + str(sq)\n", "  lib.\n  return label\n")
    ws.change(main_doc, text)
    assert "Square" in _labels(ws.completion(main_doc, utf16_pos(text, "lib.\n", offset=4)))
    v = ws.change(main_doc, MAIN)
    ws.wait_diagnostics(main_doc, v)


def test_completion_attributes_after_at(ws, main_doc) -> None:
    text = MAIN.replace("node Charge", "@\nnode Charge")
    ws.change(main_doc, text)
    items = ws.completion(main_doc, utf16_pos(text, "@\nnode", offset=1))
    assert {"retry", "timeout", "compensate", "idempotent", "impl", "effect"} <= _labels(items)
    v = ws.change(main_doc, MAIN)
    ws.wait_diagnostics(main_doc, v)


def test_completion_after_emoji(ws, main_doc) -> None:
    text = MAIN.replace('"😀 paid 🎉" + c.charge_id', '"😀 paid 🎉" + c.')
    ws.change(main_doc, text)
    items = ws.completion(main_doc, utf16_pos(text, '+ c.', offset=4))
    assert _labels(items) == {"charge_id", "status"}
    v = ws.change(main_doc, MAIN)
    ws.wait_diagnostics(main_doc, v)


def test_document_symbols(ws, main_doc) -> None:
    syms = ws.symbols(main_doc)
    by_name = {s.name: s for s in syms}
    assert {"core", "lib", "Item", "Charge", "Pay"} <= set(by_name)
    assert by_name["Charge"].kind == T.SymbolKind.Function
    assert by_name["Item"].kind == T.SymbolKind.Struct
    assert {c.name for c in by_name["Item"].children} == {"sku", "qty"}
    pay = by_name["Pay"]
    assert {c.name for c in pay.children} >= {"item", "amount", "c", "sq", "label"}
    assert pay.selection_range.start == utf16_pos(MAIN, "Pay(")
    # the outline includes the attributes above a declaration
    assert by_name["Charge"].range.start == utf16_pos(MAIN, "@impl")


def test_formatting(ws) -> None:
    messy = 'const   A=1\nworkflow W()->int{\n  let s = "😀"  # keep\n  return A+len(s)\n}\n'
    uri = ws.open(ws.root / "fmt.kflow", messy)
    edits = ws.formatting(uri)
    out = _apply(messy, edits)
    from kailash_dsl.format import format_source

    assert out == format_source(messy, "fmt.kflow")
    assert '  let s = "😀"  # keep\n' in out
    v = ws.change(uri, out)
    ws.wait_diagnostics(uri, v)
    assert not ws.formatting(uri)
    ws.change(uri, "workflow W( {\n")
    assert not ws.formatting(uri)  # syntax error: no edits, a message instead
    deadline = time.monotonic() + 5
    while not ws.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("E0001" in m.message for m in ws.messages)
    ws.close_doc(uri)


def test_rename_binding(ws) -> None:
    text = ('workflow W(total: int) -> str {\n'
            '  let label = "🎉 ${total}"\n'
            '  let out = "😀😀" + label + label\n'
            '  return out\n'
            '}\n')
    uri = ws.open(ws.root / "rename.kflow", text)
    ws.wait_diagnostics(uri, 1)
    pos = utf16_pos(text, "label + label", offset=1)
    prep = ws.prepare_rename(uri, pos)
    assert prep.placeholder == "label"
    edit = ws.rename(uri, pos, "title")
    out = _apply(text, edit.changes[uri])
    assert out == text.replace("label", "title")
    # a parameter, renamed from its declaration (also inside ${...})
    edit = ws.rename(uri, utf16_pos(text, "total: int", offset=1), "sum_")
    assert _apply(text, edit.changes[uri]) == text.replace("total", "sum_")
    ws.close_doc(uri)


def test_rename_refuses_non_bindings_and_bad_names(ws, main_doc) -> None:
    assert ws.prepare_rename(main_doc, utf16_pos(MAIN, "Charge(amount: amount)")) is None
    with pytest.raises(JsonRpcException):
        ws.rename(main_doc, utf16_pos(MAIN, "let c =", offset=4), "let")
    with pytest.raises(JsonRpcException):
        ws.rename(main_doc, utf16_pos(MAIN, "Charge(amount: amount)"), "Pay2")


def test_imported_file_change_rechecks(ws) -> None:
    lib = ws.root / "lib2.kflow"
    lib.write_text("workflow Twice(n: int) -> int {\n  return n * 2\n}\n", encoding="utf-8")
    text = 'import "./lib2.kflow" as l\n\nworkflow W() -> int {\n  return l.Twice(n: 1)\n}\n'
    uri = ws.open(ws.root / "user.kflow", text)
    assert not ws.wait_diagnostics(uri, 1).diagnostics
    lib.write_text("workflow Twice(m: int) -> int {\n  return m * 2\n}\n", encoding="utf-8")
    count = len(ws.diagnostics[uri])
    ws.notify(ws.client.workspace_did_change_watched_files, T.DidChangeWatchedFilesParams(changes=[
        T.FileEvent(uri=from_fs_path(str(lib)), type=T.FileChangeType.Changed)]))
    deadline = time.monotonic() + 20
    while len(ws.diagnostics[uri]) == count and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = {d.code for d in ws.diagnostics[uri][-1].diagnostics}
    assert {"E0203"} <= codes or {"E0202"} <= codes, codes
    ws.close_doc(uri)


def test_unsaved_change_to_an_open_import_is_seen(ws) -> None:
    """An imported file open in the editor is read from its buffer, not from disk: its
    importers are checked against what the user sees, before any save."""
    lib = ws.root / "lib3.kflow"
    lib.write_text("workflow Half(n: int) -> int {\n  return n / 2\n}\n", encoding="utf-8")
    user_text = 'import "./lib3.kflow" as l\n\nworkflow U() -> int {\n  return l.Half(n: 4)\n}\n'
    user = ws.open(ws.root / "user3.kflow", user_text)
    assert not ws.wait_diagnostics(user, 1).diagnostics
    lib_uri = ws.open(lib)
    ws.wait_diagnostics(lib_uri, 1)
    count = len(ws.diagnostics[user])
    ws.change(lib_uri, "workflow Half(m: int) -> int {\n  return m / 2\n}\n")  # not saved
    deadline = time.monotonic() + 20
    while len(ws.diagnostics[user]) == count and time.monotonic() < deadline:
        time.sleep(0.05)
    latest = ws.diagnostics[user][-1].diagnostics
    assert {d.code for d in latest} & {"E0202", "E0203"}, latest
    ws.close_doc(lib_uri)  # the file on disk stands for it again
    deadline = time.monotonic() + 20
    while ws.diagnostics[user][-1].diagnostics and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ws.diagnostics[user][-1].diagnostics
    ws.close_doc(user)


def test_lsp_command_is_listed(kflow_proc) -> None:
    r = kflow_proc("lsp", "--help")
    assert r.exit_code == 0 and "language server" in r.stdout


def test_utf8_position_encoding_when_the_client_prefers_it(tmp_path) -> None:
    caps = T.ClientCapabilities(general=T.GeneralClientCapabilities(
        position_encodings=[T.PositionEncodingKind.Utf8, T.PositionEncodingKind.Utf16]))
    s = Session(tmp_path, caps)
    try:
        assert s.capabilities.position_encoding == T.PositionEncodingKind.Utf8
        text = 'workflow W(name: str) -> str {\n  return "😀" + name\n}\n'
        uri = s.open(tmp_path / "u8.kflow", text)
        s.wait_diagnostics(uri, 1)
        line = text.split("\n")[1]
        byte_col = len(line[:line.index("name")].encode("utf-8"))
        h = s.hover(uri, T.Position(line=1, character=byte_col + 1))
        assert "param name: str" in h.contents.value
        assert h.range.start.character == byte_col
    finally:
        s.close()
