"""`kflow lsp`: the kflow language server over stdio (pygls 2).

Features: diagnostics on open/change (debounced; one analysis per document version),
hover, go-to-definition (into imports and std), references, completion, document
symbols, formatting (``kailash_dsl.format``) and rename of a binding. Everything
language-specific lives in :mod:`kailash_dsl.lsp.analysis`; this module only converts
between LSP and the analysis (positions are converted to the negotiated encoding, UTF-16
unless the client asks otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any

from lsprotocol import types as T
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from .. import __version__
from ..grammar import ast as A
from .analysis import KEYWORDS, SOURCES, Analysis, Completion, complete

log = logging.getLogger("kflow.lsp")

_COMPLETION_KINDS = {
    "keyword": T.CompletionItemKind.Keyword, "node": T.CompletionItemKind.Function,
    "workflow": T.CompletionItemKind.Method, "type": T.CompletionItemKind.Struct,
    "enum": T.CompletionItemKind.Enum, "const": T.CompletionItemKind.Constant,
    "module": T.CompletionItemKind.Module, "binding": T.CompletionItemKind.Variable,
    "builtin": T.CompletionItemKind.Function, "field": T.CompletionItemKind.Field,
    "enum_member": T.CompletionItemKind.EnumMember, "param": T.CompletionItemKind.Property,
    "attr": T.CompletionItemKind.Property,
}
_SYMBOL_KINDS = {
    "module": T.SymbolKind.Module, "node": T.SymbolKind.Function,
    "workflow": T.SymbolKind.Method, "type": T.SymbolKind.Struct,
    "enum": T.SymbolKind.Enum, "const": T.SymbolKind.Constant,
    "param": T.SymbolKind.Variable, "binding": T.SymbolKind.Variable,
    "field": T.SymbolKind.Field, "enum_member": T.SymbolKind.EnumMember,
}


def _units(s: str, enc: str) -> int:
    if enc == T.PositionEncodingKind.Utf8:
        return len(s.encode("utf-8"))
    if enc == T.PositionEncodingKind.Utf32:
        return len(s)
    return len(s.encode("utf-16-le")) // 2


class KflowServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("kflow", __version__,
                         text_document_sync_kind=T.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}
        #: the analysis whose diagnostics each document shows
        self.published: dict[str, Analysis] = {}
        self.good: dict[str, Analysis] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.debounce = float(os.environ.get("KFLOW_LSP_DEBOUNCE", "0.3"))
        self.analysis_count = 0

    # -- documents ----------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        return self.workspace.position_encoding or T.PositionEncodingKind.Utf16

    def path_of(self, uri: str) -> str:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if not path:
            stem = "".join(ch if ch.isalnum() else "_" for ch in uri.rsplit("/", 1)[-1])
            path = os.path.join(os.getcwd(), f"{stem or 'untitled'}.kflow")
        return os.path.abspath(path)

    def analysis(self, uri: str) -> Analysis:
        doc = self.workspace.get_text_document(uri)
        # the other open documents stand for their files: an unsaved change to an imported
        # file is seen by the files importing it
        overlay = {self.path_of(u): d.source for u, d in self.workspace.text_documents.items()
                   if u != uri}
        cached = self.analyses.get(uri)
        if cached is not None and cached.version == doc.version and \
                cached.text == doc.source and cached.sees_same(overlay):
            return cached
        path = self.path_of(uri)
        SOURCES.overrides[path] = doc.source
        a = Analysis(doc.source, path, doc.version, overlay)
        self.analysis_count += 1
        if a.error:
            log.error("checking %s failed: %s", path, a.error)
        self.analyses[uri] = a
        if a.ok:
            self.good[uri] = a
        return a

    def publish(self, uri: str) -> None:
        self.pending.pop(uri, None)
        if uri not in self.workspace.text_documents:
            return
        a = self.analysis(uri)
        if self.published.get(uri) is a:
            return  # nothing it reads changed
        self.published[uri] = a
        diags = [self.to_diagnostic(a, d) for d in a.diagnostics]
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=a.version))

    def schedule(self, uri: str) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self.pending[uri] = loop.call_later(self.debounce, self.publish, uri)

    def forget(self, uri: str) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        a = self.analyses.pop(uri, None)
        self.good.pop(uri, None)
        self.published.pop(uri, None)
        if a is not None:
            SOURCES.overrides.pop(a.path, None)

    # -- positions ----------------------------------------------------------------------
    def to_pos(self, lines: list[str], line: int, col: int) -> T.Position:
        """1-based line / code-point column -> LSP position."""
        i = max(line - 1, 0)
        text = lines[i] if i < len(lines) else ""
        return T.Position(line=i, character=_units(text[:max(col - 1, 0)], self.encoding))

    def from_pos(self, lines: list[str], pos: T.Position) -> tuple[int, int]:
        """LSP position -> 1-based line / code-point column."""
        text = lines[pos.line] if pos.line < len(lines) else ""
        units = 0
        for i, ch in enumerate(text):
            if units >= pos.character:
                return pos.line + 1, i + 1
            units += _units(ch, self.encoding)
        return pos.line + 1, len(text) + 1

    def to_range(self, lines: list[str], span: A.Span) -> T.Range:
        return T.Range(start=self.to_pos(lines, span.line, span.column),
                       end=self.to_pos(lines, span.end_line, span.end_column))

    def location(self, loc) -> T.Location:
        text = SOURCES.text(loc.path)
        return T.Location(uri=self.uri_for(loc.path),
                          range=self.to_range(text.split("\n"), loc.span))

    def uri_for(self, path: str) -> str:
        for uri, a in self.analyses.items():
            if a.path == path:
                return uri
        return from_fs_path(path)

    def to_diagnostic(self, a: Analysis, d) -> T.Diagnostic:
        msg = d.message + (f"\nhelp: {d.help}" if d.help else "")
        for note in d.notes:
            msg += f"\nnote: {note}"
        related = [T.DiagnosticRelatedInformation(
            location=self.location(_LabelLoc(lab.span, a)), message=lab.message)
            for lab in d.labels if lab.span.file == a.path]
        tags = [T.DiagnosticTag.Unnecessary] if d.code in ("W0001", "W0002") else None
        return T.Diagnostic(
            range=self.to_range(a.lines, d.span), message=msg, code=d.code, source="kflow",
            severity=T.DiagnosticSeverity.Error if d.is_error else T.DiagnosticSeverity.Warning,
            related_information=related or None, tags=tags)


class _LabelLoc:
    def __init__(self, span, a: Analysis):
        self.path, self.span = a.path, span


server = KflowServer()


def _at(ls: KflowServer, params) -> tuple[Analysis, int, int]:
    a = ls.analysis(params.text_document.uri)
    line, col = ls.from_pos(a.lines, params.position)
    return a, line, col


# -- synchronisation -------------------------------------------------------------------

@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: KflowServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)
    _schedule_others(ls, params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: KflowServer, params: T.DidChangeTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri)
    _schedule_others(ls, params.text_document.uri)


def _schedule_others(ls: KflowServer, uri: str) -> None:
    """Other open documents may import ``uri``: check them again (debounced; one whose
    imports read the same texts keeps its analysis and publishes nothing new)."""
    for other in list(ls.workspace.text_documents):
        if other != uri:
            ls.schedule(other)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: KflowServer, params: T.DidSaveTextDocumentParams) -> None:
    _recheck_all(ls)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: KflowServer, params: T.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.forget(uri)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    _schedule_others(ls, uri)  # its file on disk stands for it again


@server.feature(T.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched(ls: KflowServer, params: T.DidChangeWatchedFilesParams) -> None:
    _recheck_all(ls)


def _recheck_all(ls: KflowServer) -> None:
    """Imported files changed on disk: every open document may see new diagnostics."""
    for uri in list(ls.workspace.text_documents):
        ls.analyses.pop(uri, None)
        ls.publish(uri)


# -- features ----------------------------------------------------------------------------

@server.feature(T.TEXT_DOCUMENT_HOVER)
def hover(ls: KflowServer, params: T.HoverParams) -> T.Hover | None:
    a, line, col = _at(ls, params)
    found = a.hover(line, col)
    if found is None:
        return None
    text, span = found
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text),
                   range=ls.to_range(a.lines, span))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def definition(ls: KflowServer, params: T.DefinitionParams) -> T.Location | None:
    a, line, col = _at(ls, params)
    loc = a.definition(line, col)
    return ls.location(loc) if loc is not None else None


@server.feature(T.TEXT_DOCUMENT_REFERENCES)
def references(ls: KflowServer, params: T.ReferenceParams) -> list[T.Location] | None:
    a, line, col = _at(ls, params)
    occ = a.occurrence_at(line, col)
    if occ is None:
        return None
    out = []
    for o in a.occurrences:
        if o.target is occ.target or (o.kind == occ.kind and _same_target(o.target, occ.target)):
            if o.is_def and not params.context.include_declaration:
                continue
            out.append(T.Location(uri=params.text_document.uri,
                                  range=ls.to_range(a.lines, o.span)))
    return out


def _same_target(x: Any, y: Any) -> bool:
    if isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y) == 2:
        a0, a1 = x
        b0, b1 = y
        return a0 is b0 and (a1 is b1 or a1 == b1)
    return False


@server.feature(T.TEXT_DOCUMENT_COMPLETION,
                T.CompletionOptions(trigger_characters=[".", "@", "(", ","]))
def completion(ls: KflowServer, params: T.CompletionParams) -> T.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    lines = doc.source.split("\n")
    line, col = ls.from_pos(lines, params.position)
    a = ls.analysis(uri)
    good = a if a.ok else ls.good.get(uri)
    items = complete(doc.source, line, col, good)
    seen: set[tuple[str, str]] = set()
    out = []
    for c in items:
        key = (c.label, c.kind)
        if key in seen:
            continue
        seen.add(key)
        out.append(_completion_item(c))
    return T.CompletionList(is_incomplete=False, items=out)


def _completion_item(c: Completion) -> T.CompletionItem:
    doc = T.MarkupContent(kind=T.MarkupKind.Markdown, value=c.doc) if c.doc else None
    return T.CompletionItem(label=c.label, kind=_COMPLETION_KINDS.get(c.kind),
                            detail=c.detail or None, documentation=doc,
                            insert_text=c.insert, sort_text=f"{c.sort}{c.label}")


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls: KflowServer, params: T.DocumentSymbolParams):
    uri = params.text_document.uri
    a = ls.analysis(uri)
    if a.module is None:
        a = ls.good.get(uri, a)

    def conv(s: dict) -> T.DocumentSymbol:
        return T.DocumentSymbol(
            name=s["name"], kind=_SYMBOL_KINDS.get(s["kind"], T.SymbolKind.Variable),
            detail=s["detail"] or None, range=ls.to_range(a.lines, s["span"]),
            selection_range=ls.to_range(a.lines, s["selection"]),
            children=[conv(c) for c in s["children"]] or None)

    return [conv(s) for s in a.symbols()]


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: KflowServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
    from ..format import FormatError, format_source

    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    try:
        new = format_source(doc.source, ls.path_of(uri))
    except FormatError as exc:
        ls.window_show_message(T.ShowMessageParams(
            type=T.MessageType.Warning, message=f"kflow fmt: {exc.message}"))
        return None
    if new == doc.source:
        return []
    lines = doc.source.split("\n")
    end = ls.to_pos(lines, len(lines), len(lines[-1]) + 1)
    return [T.TextEdit(range=T.Range(start=T.Position(line=0, character=0), end=end),
                       new_text=new)]


@server.feature(T.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(ls: KflowServer, params: T.PrepareRenameParams):
    a, line, col = _at(ls, params)
    b, occ = a.binding_at(line, col)
    if b is None:
        return None
    return T.PrepareRenamePlaceholder(range=ls.to_range(a.lines, occ.span), placeholder=b.name)


@server.feature(T.TEXT_DOCUMENT_RENAME, T.RenameOptions(prepare_provider=True))
def rename(ls: KflowServer, params: T.RenameParams) -> T.WorkspaceEdit | None:
    new = params.new_name
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new) or new in KEYWORDS:
        raise JsonRpcInvalidParams(f"`{new}` is not a valid kflow name")
    a, line, col = _at(ls, params)
    spans = a.rename_spans(line, col)
    if not spans:
        raise JsonRpcInvalidParams("only local bindings (let, parameters, loop and catch "
                                   "variables) can be renamed")
    edits = [T.TextEdit(range=ls.to_range(a.lines, s), new_text=new) for s in spans]
    return T.WorkspaceEdit(changes={params.text_document.uri: edits})


def main() -> None:
    """Serve LSP over stdin/stdout until the client says exit."""
    logging.basicConfig(level=os.environ.get("KFLOW_LSP_LOG", "WARNING"),
                        format="kflow-lsp %(levelname)s %(message)s")
    server.start_io()
