"""`kflow doc`: reference text for modules and nodes, from their declarations.

The same source of truth as the emitters: the checked program. A node's entry shows its
signature with resolved types, its effect and resource, its retry/timeout policy, its
compensation and its `##` doc comment. Output is Markdown, which the CLI prints through
Rich on a terminal and as plain text otherwise.
"""

from __future__ import annotations

from pathlib import Path

from .compiler import types as T
from .compiler.program import (
    EnumInfo,
    ModuleInfo,
    NodeInfo,
    Program,
    TypeInfo,
    WorkflowInfo,
)


class DocError(Exception):
    """The target names nothing documentable."""


_SOURCES: dict[str, list[str]] = {}


def source_text(span) -> str:
    """The source text under a span (defaults are shown as written)."""
    lines = _SOURCES.get(span.file)
    if lines is None:
        try:
            lines = Path(span.file).read_text(encoding="utf-8").splitlines()
        except OSError:
            return "…"
        _SOURCES[span.file] = lines
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1:span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1:]]
    parts += lines[span.line:span.end_line - 1]
    parts.append(lines[span.end_line - 1][:span.end_column - 1])
    return " ".join(x.strip() for x in parts)


def _param(p) -> str:
    text = f"{p.name}: {p.type.show()}"
    if p.has_default and p.default is not None:
        text += f" = {source_text(p.default.span)}"
    return text


def signature(sym: NodeInfo | WorkflowInfo) -> str:
    kind = "node" if isinstance(sym, NodeInfo) else "workflow"
    params = ", ".join(_param(p) for p in sym.params)
    result = "" if sym.result == T.NULL and kind == "workflow" else f" -> {sym.result.show()}"
    return f"{kind} {sym.name}({params}){result}"


def _policy(n: NodeInfo) -> list[str]:
    out = []
    eff = n.effect + (f' (resource "{n.resource}")' if n.resource else "")
    out.append(f"effect: {eff}")
    if n.retry is not None:
        b = n.retry.backoff
        out.append(f"retry: {n.retry.attempts} attempts, {b.kind}({b.base_ms}ms"
                   + (f", max {b.max_ms}ms" if b.max_ms else "") + ")")
    elif n.effect == "read":
        out.append("retry: 3 attempts, exponential(100ms, max 2s) (default for reads)")
    if n.timeout_ms:
        out.append(f"timeout: {n.timeout_ms}ms")
    if n.compensate is not None:
        out.append(f"compensated by: {n.compensate.name}")
    if n.idempotent:
        out.append("idempotent")
    if n.transactional:
        out.append(f'2PC participant (resource "{n.transactional}")')
    if n.impl:
        out.append(f"implementation: {n.impl}")
    return out


def node_markdown(sym: NodeInfo | WorkflowInfo, qual: str) -> str:
    lines = [f"### `{qual}`", "", "```kflow", signature(sym), "```", ""]
    if sym.doc:
        lines += [sym.doc, ""]
    if isinstance(sym, NodeInfo):
        lines += [f"- {x}" for x in _policy(sym)] + [""]
    return "\n".join(lines)


def _module_doc(mod: ModuleInfo) -> str | None:
    decl = mod.ast.module_decl
    if decl is None:
        return None
    docs = {c.span.line: c.text[2:].strip() for c in mod.ast.comments if c.text.startswith("##")}
    lines = []
    ln = decl.span.line - 1
    while ln in docs:
        lines.append(docs[ln])
        ln -= 1
    return "\n".join(reversed(lines)) or None


def module_markdown(mod: ModuleInfo) -> str:
    out = [f"## `{mod.name}`", ""]
    doc = _module_doc(mod)
    if doc:
        out += [doc, ""]
    prefix = mod.name.rsplit(".", 1)[-1]
    for sym in mod.scope.values():
        if getattr(sym, "module", None) is not mod:
            continue
        if isinstance(sym, (NodeInfo, WorkflowInfo)):
            out.append(node_markdown(sym, f"{prefix}.{sym.name}"))
        elif isinstance(sym, TypeInfo):
            out += [f"### type `{prefix}.{sym.name}`", "", "```kflow",
                    f"type {sym.name} = {_type_body(sym.type)}", "```", ""]
            if sym.doc:
                out += [sym.doc, ""]
        elif isinstance(sym, EnumInfo):
            members = ", ".join(sym.type.members)
            out += [f"### enum `{prefix}.{sym.name}`", "", f"`{{ {members} }}`", ""]
            if sym.doc:
                out += [sym.doc, ""]
    return "\n".join(out).rstrip() + "\n"


def _type_body(t: T.Type) -> str:
    if isinstance(t, T.RecordT):
        return "{ " + ", ".join(f"{f.name}: {f.type.show()}" for f in t.fields) + " }"
    return t.show()


def _load(path: Path) -> Program:
    from .compiler.api import load_program

    prog = load_program(str(path))
    errors = [d for d in prog.diagnostics if d.is_error and d.span.file == prog.entry.path]
    if errors and not prog.entry.scope:
        raise DocError(f"{path} has errors: {errors[0].message}")
    return prog


def render(target: str | None) -> str:
    """Markdown for ``target``: ``std.http``, ``std.http.Get``, ``http.Get``, a .kflow
    file, ``file.kflow:Name``; nothing → an index of the standard library."""
    from .stdlib import MODULES, module_path

    if not target:
        out = ["# kflow standard library", ""]
        for name in MODULES:
            prog = _load(module_path(name))
            doc = " ".join((_module_doc(prog.entry) or "").split())
            doc = doc.split(". ")[0].rstrip(".") + "."
            nodes = [s.name for s in prog.entry.scope.values()
                     if isinstance(s, NodeInfo) and s.module is prog.entry]
            out.append(f"- **std.{name}** — {doc} ({', '.join(nodes)})")
        out += ["", "`kflow doc std.http` shows a module; `kflow doc std.http.Get` one node."]
        return "\n".join(out) + "\n"
    file_part, _, member = target.partition(":")
    if file_part.endswith(".kflow"):
        path = Path(file_part)
        if not path.is_file():
            raise DocError(f"file not found: {file_part}")
        prog = _load(path)
        return _member_or_module(prog.entry, member or None)
    name = target[4:] if target.startswith("std.") else target
    mod_name, _, member = name.partition(".")
    path = module_path(mod_name)
    if path is None:
        from .diagnostics import did_you_mean

        hint = did_you_mean(mod_name, MODULES)
        extra = f"; did you mean `std.{hint}`?" if hint else ""
        raise DocError(f"no standard module `std.{mod_name}`{extra} "
                       f"(modules: {', '.join('std.' + m for m in MODULES)})")
    return _member_or_module(_load(path).entry, member or None)


def _member_or_module(mod: ModuleInfo, member: str | None) -> str:
    if member is None:
        return module_markdown(mod)
    sym = mod.scope.get(member)
    if sym is None or getattr(sym, "module", None) is not mod:
        from .diagnostics import did_you_mean

        names = [k for k, v in mod.scope.items() if getattr(v, "module", None) is mod]
        hint = did_you_mean(member, names)
        extra = f"; did you mean `{hint}`?" if hint else ""
        raise DocError(f"`{mod.name}` has no `{member}`{extra}")
    prefix = mod.name.rsplit(".", 1)[-1]
    if isinstance(sym, (NodeInfo, WorkflowInfo)):
        return node_markdown(sym, f"{prefix}.{sym.name}")
    if isinstance(sym, TypeInfo):
        return f"### type `{prefix}.{sym.name}`\n\n```kflow\ntype {sym.name} = " \
               f"{_type_body(sym.type)}\n```\n\n{sym.doc or ''}\n"
    if isinstance(sym, EnumInfo):
        return f"### enum `{prefix}.{sym.name}`\n\n`{{ {', '.join(sym.type.members)} }}`\n"
    raise DocError(f"`{member}` is not documented")
