"""``kflow emit python``: a checked program as a readable, typed asyncio module (the eject).

The module has pydantic models for the types, one ``async def`` per workflow (those of
the file and every workflow they call, imported ones too), a :class:`Node` per node
called, and a command line. Its runtime support is ``templates/prelude.py.j2``, copied
in so the module needs only pydantic (and the node implementations).

Scheduling follows §6 statically: a run of consecutive ``let``/call statements is cut
into layers by data dependencies and effect conflicts (ignored inside ``parallel``), and
the steps of one layer run together with :func:`gather`. Control flow statements are
barriers. Inside a transaction, steps run one at a time.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from ..compiler import types as T
from ..compiler.program import (
    Binding,
    ConstInfo,
    NodeInfo,
    Program,
    RetryPolicy,
    WorkflowInfo,
)
from ..grammar import ast as A
from .common import (
    NOT_CONST,
    Namer,
    const_value,
    decl_field,
    field_default,
    snake_case,
    type_key,
)
from .pywrap import wrap

_TEMPLATES = Path(__file__).parent / "templates"

#: names the generated module defines or imports at top level (besides its own)
MODULE_NAMES = {
    "argparse", "asyncio", "base64", "contextlib", "functools", "inspect", "json",
    "logging", "math", "os", "random", "re", "sys", "uuid", "Awaitable", "Callable",
    "Iterator", "Coroutine", "ContextVar", "UTC", "datetime", "TracebackType", "Self", "dataclass", "Path", "Annotated", "Any", "Literal",
    "BaseModel", "BeforeValidator", "ConfigDict", "Field", "PlainSerializer",
    "TypeAdapter", "ValidationError",
}


def _prelude_names(text: str) -> set[str]:
    names = set(re.findall(r"^(?:async def|def|class) ([A-Za-z_][A-Za-z0-9_]*)", text, re.MULTILINE))
    names |= set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\s*:[^=]*)?\s*=", text, re.MULTILINE))
    return names


_PY_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
#: attributes a pydantic model field must not shadow
_MODEL_ATTRS = {n for n in dir(__import__("pydantic").BaseModel)} | {"model_config"}

# Python precedence levels, low to high
P_LAMBDA, P_IF, P_OR, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_UNARY, P_AWAIT, P_POSTFIX, P_ATOM = \
    range(12)
_BINARY = {"or": P_OR, "and": P_AND, "==": P_CMP, "!=": P_CMP, "<": P_CMP, "<=": P_CMP,
           ">": P_CMP, ">=": P_CMP, "in": P_CMP, "+": P_ADD, "-": P_ADD, "*": P_MUL,
           "/": P_MUL, "//": P_MUL, "%": P_MUL}


def py_str(s: str, quote: str = '"') -> str:
    """A Python string literal in ``quote``s (double by default)."""
    out = [quote]
    for ch in s:
        if ch == quote:
            out.append("\\" + quote)
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append(quote)
    return "".join(out)


def py_literal(v: Any, quote: str = '"') -> str:
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if v in (float("inf"), float("-inf")):
            return 'float("inf")' if v > 0 else 'float("-inf")'
        return repr(v)
    if isinstance(v, str):
        return py_str(v, quote)
    if isinstance(v, (bytes, bytearray)):
        return repr(bytes(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(py_literal(x, quote) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{py_str(str(k), quote)}: {py_literal(x, quote)}"
                               for k, x in v.items()) + "}"
    return repr(v)


def _num(n: int) -> str:
    """An int as Python source, with ``_`` separators when long (``86_400_000``)."""
    return f"{n:_}" if abs(n) >= 10_000 else str(n)


def _mutable(v: Any) -> bool:
    return isinstance(v, (list, dict))


def _is_factory(code: str) -> bool:
    return code.startswith("lambda") or code in ("list", "dict")


def _factory(v: Any) -> str:
    """A ``default_factory`` for a mutable default (``list`` / ``dict`` when empty)."""
    if v == [] and isinstance(v, list):
        return "list"
    if v == {} and isinstance(v, dict):
        return "dict"
    return f"lambda: {py_literal(v)}"


def _upper_snake(name: str) -> str:
    return snake_case(name).upper()


def _pascal(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _retry_code(r: RetryPolicy | None) -> str | None:
    if r is None:
        return None
    b = r.backoff
    args = [str(r.attempts), py_str(b.kind), _num(b.base_ms)]
    if b.max_ms is not None or b.jitter:
        args.append(_num(b.max_ms) if b.max_ms is not None else "None")
    if b.jitter:
        args.append("True")
    return f"Retry({', '.join(args)})"


def _effects_of(target: Any) -> frozenset:
    if isinstance(target, NodeInfo):
        return frozenset() if target.effect == "pure" else \
            frozenset({(target.effect, target.resource)})
    if isinstance(target, WorkflowInfo):
        return frozenset((n.effect, n.resource) for n in target.reachable_nodes
                         if n.effect != "pure")
    return frozenset()


def _conflict(a: frozenset, b: frozenset) -> bool:
    for e1, r1 in a:
        for e2, r2 in b:
            if (e1 == "write" or e2 == "write") and (r1 is None or r2 is None or r1 == r2):
                return True
    return False


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    def indent(self) -> None:
        self.level += 1

    def dedent(self) -> None:
        self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines)


# ----------------------------------------------------------------------------- module


class ModuleGen:
    """Everything at module level: names, types, constants, nodes, workflows."""

    def __init__(self, program: Program) -> None:
        self.program = program
        prelude = (_TEMPLATES / "prelude.py.j2").read_text(encoding="utf-8")
        self.prelude = prelude.rstrip("\n")
        self.names = Namer(_PY_RESERVED | MODULE_NAMES | _prelude_names(prelude))
        self.type_blocks: list[str] = []
        self.type_names: dict[str, str] = {}  # type_key -> annotation name
        self.node_blocks: list[str] = []
        self.node_names: dict[int, str] = {}  # id(NodeInfo) -> constant
        self.impl_names: dict[str, str] = {}  # "mod:attr" -> python name
        #: module -> (local name, package, last part); package "" for `import m`
        self.module_imports: dict[str, tuple[str, str, str]] = {}
        self.wf_params: dict[int, dict[str, str]] = {}
        self.const_blocks: list[str] = []
        self.const_names: dict[int, str] = {}
        self.wf_names: dict[int, str] = {}
        self.uses_literal = False
        self.uses_field = False
        from .common import TypeIndex
        self.index = TypeIndex([program])

    # -- names

    def claim(self, name: str, module: str | None = None) -> str:
        alts = [f"{_pascal(module)}{name}" if name[:1].isupper() else
                f"{snake_case(module.replace('.', '_'))}_{name}"] if module else []
        return self.names.claim(name, alts)

    # -- types

    def ann(self, t: T.Type, hint: str = "Record") -> str:
        """The annotation pydantic validates a value of ``t`` with."""
        if isinstance(t, T.Prim):
            return {"int": "int", "float": "float", "str": "str", "bool": "bool",
                    "null": "None", "json": "Any", "bytes": "Bytes",
                    "duration": "Duration"}[t.name]
        if isinstance(t, T.Unknown):
            return "Any"
        if isinstance(t, T.Optional):
            inner = self.ann(t.inner, hint)
            return inner if inner == "Any" else f"{inner} | None"
        if isinstance(t, T.ListT):
            return f"list[{self.ann(t.elem, hint + 'Item')}]"
        if isinstance(t, T.MapT):
            return f"dict[str, {self.ann(t.elem, hint + 'Value')}]"
        if isinstance(t, T.ErrorT):
            return "ErrorRecord"
        if isinstance(t, T.EnumT):
            return self._enum(t)
        if isinstance(t, T.RecordT):
            return self._model(t, hint)
        return "Any"

    def hint_ann(self, t: T.Type) -> str:
        """The annotation of a runtime value in a signature (records are dicts)."""
        if isinstance(t, T.Prim):
            return {"int": "int", "float": "float", "str": "str", "bool": "bool",
                    "null": "None", "json": "Any", "bytes": "bytes",
                    "duration": "int"}[t.name]
        if isinstance(t, T.Optional):
            inner = self.hint_ann(t.inner)
            return inner if inner == "Any" else f"{inner} | None"
        if isinstance(t, T.ListT):
            return f"list[{self.hint_ann(t.elem)}]"
        if isinstance(t, T.MapT):
            return f"dict[str, {self.hint_ann(t.elem)}]"
        if isinstance(t, T.EnumT):
            return "str"
        if isinstance(t, (T.RecordT, T.ErrorT)):
            return "dict[str, Any]"
        return "Any"

    def _enum(self, t: T.EnumT) -> str:
        key = type_key(t)
        if key in self.type_names:
            return self.type_names[key]
        info = self.index.lookup(t)
        name = self.claim(t.name, self._qualifier(info))
        self.type_names[key] = name
        self.uses_literal = True
        lines = []
        if info and info.doc:
            lines += [f"#: {ln}".rstrip() for ln in info.doc.splitlines()]
        members = ", ".join(py_str(m) for m in t.members)
        lines.append(f"{name} = Literal[{members}]")
        self.type_blocks.append("\n".join(lines))
        return name

    def _qualifier(self, info: Any) -> str | None:
        """The module to prefix a type's name with when it collides (not the entry's)."""
        if info is None or info.module == self.program.entry.name:
            return None
        return info.module

    def _model(self, t: T.RecordT, hint: str) -> str:
        key = type_key(t)
        if key in self.type_names:
            return self.type_names[key]
        info = self.index.lookup(t)
        base = t.name or hint
        name = self.claim(base, self._qualifier(info))
        self.type_names[key] = name
        decl = info.decl if info else None
        body: list[str] = []
        fields_taken: set[str] = set()
        for f in t.fields:
            ann = self.ann(f.type, name + _pascal(f.name))
            pyname = f.name
            alias = None
            if (keyword.iskeyword(pyname) or keyword.issoftkeyword(pyname)
                    or pyname.startswith("_") or pyname in _MODEL_ATTRS
                    or pyname in fields_taken):
                pyname = pyname.lstrip("_") + "_"
                while pyname in fields_taken or pyname in _MODEL_ATTRS:
                    pyname += "_"
                alias = f.name
            fields_taken.add(pyname)
            default = self._field_default(f, decl)
            extra = []
            if alias is not None:
                extra.append(f"alias={py_str(alias)}")
            if default is None and not extra:
                body.append(f"{pyname}: {ann}")
            elif default is None:
                self.uses_field = True
                body.append(f"{pyname}: {ann} = Field({', '.join(extra)})")
            elif _is_factory(default) or extra:
                self.uses_field = True
                arg = f"default_factory={default}" if _is_factory(default) \
                    else f"default={default}"
                body.append(f"{pyname}: {ann} = Field({', '.join([arg, *extra])})")
            else:
                body.append(f"{pyname}: {ann} = {default}")
        lines = [f"class {name}(BaseModel):"]
        doc = info.doc if info and info.doc else (
            f"The kflow record `{t.show()}`." if not t.name else f"The kflow type `{t.name}`.")
        lines += _docstring(doc, 1)
        lines.append("")
        lines.append("    model_config = RECORD_CONFIG")
        if body:
            lines.append("")
            lines += ["    " + b for b in body]
        self.type_blocks.append("\n".join(lines))
        return name

    def _field_default(self, f: T.FieldT, decl: Any) -> str | None:
        """Python source of a field's default (``lambda: ...`` when mutable), or None."""
        if not f.has_default:
            return "None" if T.is_optional(f.type) or f.type == T.JSON else None
        v = field_default(f, decl_field(decl, f.name), self.program)
        if v is NOT_CONST:
            dfield = decl_field(decl, f.name)
            if dfield is not None and dfield.default is not None:
                code = ExprGen(self, None).expr(dfield.default)[0]
                return f"lambda: {code}"
            return "None"
        if _mutable(v):
            return _factory(v)
        return py_literal(v)

    # -- constants

    def const(self, c: ConstInfo) -> str:
        if id(c) in self.const_names:
            return self.const_names[id(c)]
        name = self.claim(_upper_snake(c.name) if not c.name.isupper() else c.name,
                          c.module.name if c.module is not self.program.entry else None)
        self.const_names[id(c)] = name
        self.const_blocks.append(f"{name} = {py_literal(c.value)}")
        return name

    # -- nodes

    def node(self, n: NodeInfo) -> str:
        if id(n) in self.node_names:
            return self.node_names[id(n)]
        comp = self.node(n.compensate) if n.compensate is not None else None
        base = _upper_snake(n.name)
        alts = [f"{_upper_snake(n.module.name.replace('.', '_'))}_{base}"] \
            if n.module is not self.program.entry else []
        name = self.names.claim(base, [*alts, f"{base}_NODE"])
        self.node_names[id(n)] = name
        impl = self.impl(n)
        args = [py_str(n.name), impl]
        if n.effect != "write":
            args.append(f"effect={py_str(n.effect)}")
        result = self.ann(n.result, _pascal(n.name) + "Result")
        args.append(f"result=TypeAdapter({result})")
        retry = _retry_code(n.retry)
        if retry:
            args.append(f"retry={retry}")
        if n.timeout_ms is not None:
            args.append(f"timeout_ms={_num(n.timeout_ms)}")
        if n.transactional:
            args.append("transactional=True")
        if comp is not None and n.compensate is not None:
            params = ", ".join(py_str(p.name) for p in n.compensate.params)
            params = f"({params},)" if len(n.compensate.params) == 1 else f"({params})"
            args.append(f"compensate=({comp}, {params})")
        if n.bulkhead:
            args.append(f"bulkhead={n.bulkhead}")
        if n.circuit_breaker:
            failures, reset_ms = n.circuit_breaker
            args.append(f"circuit_breaker=({failures}, {_num(reset_ms)})")
        lines = []
        sig = ", ".join(f"{p.name}: {p.type.show()}" for p in n.params)
        lines.append(f"#: {n.qualname}({sig}) -> {n.result.show()}")
        if n.doc:
            lines += [f"#: {ln}".rstrip() for ln in n.doc.splitlines()]
        one = f"{name} = Node({', '.join(args)})"
        if len(one) <= 88:
            lines.append(one)
        else:
            lines.append(f"{name} = Node(")
            lines += [f"    {a}," for a in args]
            lines.append(")")
        self.node_blocks.append("\n".join(lines))
        return name

    def impl(self, n: NodeInfo) -> str:
        """``module.attr`` for ``@impl("module:attr")``, importing the module once."""
        ref = n.impl
        if not ref or ":" not in ref:
            return self._missing_impl(n)
        if ref in self.impl_names:
            return self.impl_names[ref]
        mod, attr = ref.split(":", 1)
        local = self.module_alias(mod)
        expr = f"{local}.{attr}"
        if n.transactional:
            inst = self.names.claim(_upper_snake(n.name) + "_PARTICIPANT")
            self.node_blocks.append(f"#: The 2PC participant of {n.name}: one instance per "
                                    f"process.\n{inst} = {expr}()")
            expr = inst
        self.impl_names[ref] = expr
        return expr

    def module_alias(self, mod: str) -> str:
        """The local name of an implementation module (``import m`` / ``from p import m``)."""
        if mod in self.module_imports:
            return self.module_imports[mod][0]
        if mod in MODULE_NAMES:  # a module the prelude imports already
            self.module_imports[mod] = (mod, "", "")
            return mod
        pkg, _, last = mod.rpartition(".")
        alts = [f"std_{last}"] if pkg == "kailash_dsl.stdlib" else []
        local = self.names.claim(last, [*alts, f"{last}_module",
                                        snake_case(mod.replace(".", "_"))])
        self.module_imports[mod] = (local, pkg, last)
        return local

    def _missing_impl(self, n: NodeInfo) -> str:
        name = self.names.claim(snake_case(n.name) + "_missing")
        self.node_blocks.append(
            f"def {name}(**kwargs: Any) -> Any:\n"
            f"    raise NotImplementedError({py_str(n.qualname + ' has no @impl')})")
        return name

    def import_lines(self) -> str:
        """The node implementations' modules and pydantic, sorted the way isort does."""
        pyd = ["BaseModel", "BeforeValidator", "ConfigDict", "PlainSerializer",
               "TypeAdapter", "ValidationError"]
        if self.uses_field:
            pyd.insert(3, "Field")
        straight: list[str] = []
        froms: dict[str, list[tuple[str, str]]] = {"pydantic": [(n, n) for n in pyd]}
        for mod, (local, pkg, last) in self.module_imports.items():
            if not last:
                continue  # already imported by the prelude
            if pkg:
                froms.setdefault(pkg, []).append((last, local))
            else:
                straight.append(f"import {mod}" + (f" as {local}" if local != mod else ""))
        lines = sorted(straight, key=_isort_module)
        for pkg in sorted(froms, key=str.lower):
            names = sorted(n for n, loc in froms[pkg] if n == loc)
            if pkg == "pydantic":
                names = pyd
            if names:
                one = f"from {pkg} import {', '.join(names)}"
                if len(one) > 88:
                    one = f"from {pkg} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
                lines.append(one)
            for n, loc in sorted((n, loc) for n, loc in froms[pkg] if n != loc):
                lines.append(f"from {pkg} import {n} as {loc}")
        return "\n".join(lines)

    def params_of(self, wf: WorkflowInfo) -> dict[str, str]:
        """Python names of a workflow's parameters (kept unless they would shadow)."""
        if id(wf) not in self.wf_params:
            out: dict[str, str] = {}
            for p in wf.params:
                cand = p.name.lstrip("_") or "param"
                while cand in self.names.taken or cand in _MODEL_ATTRS \
                        or cand in out.values():
                    cand += "_"
                out[p.name] = cand
            self.wf_params[id(wf)] = out
        return self.wf_params[id(wf)]

    # -- workflows

    def workflow_name(self, wf: WorkflowInfo) -> str:
        if id(wf) not in self.wf_names:
            self.wf_names[id(wf)] = self.names.claim(
                snake_case(wf.name),
                [f"{snake_case(wf.module.name.replace('.', '_'))}_{snake_case(wf.name)}",
                 f"{snake_case(wf.name)}_workflow"])
        return self.wf_names[id(wf)]


def _isort_module(line: str) -> str:
    """isort's key for an import line: the module name, case-insensitively."""
    return line.split()[1].lower()


def _docstring(doc: str, level: int) -> list[str]:
    pad = "    " * level
    doc = doc.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = doc.splitlines()
    if len(lines) == 1:
        return [f'{pad}"""{lines[0]}"""']
    out = [f'{pad}"""{lines[0]}']
    if len(lines) > 1:
        out.append("")
        for ln in lines[1:]:
            out.append(f"{pad}{ln}".rstrip())
    out.append(f'{pad}"""')
    return out


# ----------------------------------------------------------------------------- expressions


class ExprGen:
    """kflow expressions → Python expressions (with ``await`` for nested step calls)."""

    def __init__(self, mod: ModuleGen, fn: FunctionGen | None) -> None:
        self.mod = mod
        self.fn = fn
        self.program = mod.program
        self.comp_vars: dict[str, str] = {}
        self.q = '"'  # single quotes inside f-string replacement fields

    def s(self, text: str) -> str:
        return py_str(text, self.q)

    def lit(self, value: Any) -> str:
        return py_literal(value, self.q)

    def code(self, e: A.Expr, prec: int = P_LAMBDA) -> str:
        src, p = self.expr(e)
        return f"({src})" if p < prec else src

    def expr(self, e: A.Expr) -> tuple[str, int]:
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise NotImplementedError(f"cannot emit {type(e).__name__} at {e.span}")
        return m(e)

    def e_Literal(self, e: A.Literal) -> tuple[str, int]:
        code = _num(e.value) if e.kind == "duration" else self.lit(e.value)
        return code, (P_UNARY if code.startswith("-") else P_ATOM)

    def e_Interpolated(self, e: A.Interpolated) -> tuple[str, int]:
        outer = self.q
        self.q = "'"
        fields: list[tuple[str, int, bool] | None] = []
        try:
            for p in e.parts:
                if isinstance(p, str):
                    fields.append(None)
                    continue
                code, prec = self.expr(p)
                t = self.program.types.get(p)
                if t is not None and T.strip_optional(t) == T.DURATION:
                    fields.append((code, prec, "duration"))
                    continue
                fields.append((code, prec, t == T.STR or isinstance(t, T.EnumT)
                               or t == T.INT))
        finally:
            self.q = outer

        def field_code(f: tuple[str, int, bool | str], need: int) -> str:
            code, prec, is_str = f
            if is_str == "duration":
                return f"duration_text({code})"
            if not is_str:
                return f"text({code})"
            return f"({code})" if prec < need else code

        usable = outer == '"' and all(
            f is None or not any(ch in field_code(f, P_IF + 1) for ch in '"\\{}\n')
            for f in fields)
        if usable:
            text = []
            for p, f in zip(e.parts, fields):
                if f is None:
                    text.append(str(p).replace("{", "{{").replace("}", "}}"))
                else:
                    text.append("{" + field_code(f, P_IF + 1) + "}")
            if all(f is None for f in fields):
                return self.s("".join(str(p) for p in e.parts)), P_ATOM
            return "f" + py_str("".join(text)), P_ATOM
        pieces = []
        for p, f in zip(e.parts, fields):
            if f is None:
                if p:
                    pieces.append(self.s(str(p)))
            else:
                pieces.append(field_code(f, P_ADD + 1))
        if not pieces:
            return self.s(""), P_ATOM
        return " + ".join(pieces), (P_ADD if len(pieces) > 1 else P_POSTFIX)

    def e_Name(self, e: A.Name) -> tuple[str, int]:
        if e.id in self.comp_vars:
            return self.comp_vars[e.id], P_ATOM
        ref = self.program.names.get(e)
        if ref is None:
            if self.fn is not None and e.id in self.fn.by_name:
                return self.fn.by_name[e.id], P_ATOM
            raise NotImplementedError(f"unresolved name `{e.id}` at {e.span}")
        return self._ref(ref, e)

    def _ref(self, ref: Any, e: Any) -> tuple[str, int]:
        if ref.kind == "local":
            assert self.fn is not None
            return self.fn.local(ref.target), P_ATOM
        if ref.kind == "const":
            return self.mod.const(ref.target), P_ATOM
        if ref.kind == "enum_member":
            return self.s(ref.target[1]), P_ATOM
        raise NotImplementedError(f"`{ref.kind}` is not a value at {e.span}")

    def e_Attribute(self, e: A.Attribute) -> tuple[str, int]:
        ref = self.program.names.get(e)
        if ref is not None:
            return self._ref(ref, e)
        base = self.program.names.get(e.obj)
        if base is not None and base.kind == "enum":
            return self.s(e.name), P_ATOM
        if e.optional:
            obj = self.code(e.obj, P_POSTFIX)
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", obj):
                return f"None if {obj} is None else {obj}[{self.s(e.name)}]", P_IF
            tmp = self.fn.temp("maybe") if self.fn else "maybe"
            return ((f"None if ({tmp} := {self.code(e.obj, P_IF + 1)}) is None "
                    f"else {tmp}[{self.s(e.name)}]"), P_IF)
        return f"{self.code(e.obj, P_POSTFIX)}[{self.s(e.name)}]", P_POSTFIX

    def e_Index(self, e: A.Index) -> tuple[str, int]:
        return f"{self.code(e.obj, P_POSTFIX)}[{self.code(e.index)}]", P_POSTFIX

    def e_Unary(self, e: A.Unary) -> tuple[str, int]:
        if e.op == "not":
            return f"not {self.code(e.operand, P_NOT)}", P_NOT
        return f"-{self.code(e.operand, P_UNARY)}", P_UNARY

    def e_Binary(self, e: A.Binary) -> tuple[str, int]:
        op = e.op
        if op == "??":
            right = self.code(e.right, P_IF)
            left_e = e.left
            if isinstance(left_e, A.Attribute) and left_e.optional \
                    and self.program.names.get(left_e) is None and _cheap(left_e.obj):
                obj = self.code(left_e.obj, P_POSTFIX)
                item = f"{obj}[{self.s(left_e.name)}]"
                return (f"{item} if {obj} is not None and {item} is not None else {right}",
                        P_IF)
            left = self.code(e.left, P_IF + 1)
            if _cheap(left_e):
                return f"{left} if {left} is not None else {right}", P_IF
            tmp = self.fn.temp("value") if self.fn else "value"
            return f"{tmp} if ({tmp} := {left}) is not None else {right}", P_IF
        prec = _BINARY[op]
        if op in ("==", "!=") and (_is_null(e.left) or _is_null(e.right)):
            other = e.right if _is_null(e.left) else e.left
            test = "is" if op == "==" else "is not"
            return f"{self.code(other, P_CMP + 1)} {test} None", P_CMP
        if op == "in" and self._builtin_call(e.right) == "keys":
            m = e.right.args[0].value
            return f"{self.code(e.left, P_CMP + 1)} in {self.code(m, P_CMP + 1)}", P_CMP
        if prec == P_CMP:
            return (f"{self.code(e.left, P_CMP + 1)} {op} {self.code(e.right, P_CMP + 1)}",
                    P_CMP)
        if op == "/" and self.program.types.get(e) == T.DURATION:
            op = "//"  # durations are whole milliseconds, as under `kflow run`
        return f"{self.code(e.left, prec)} {op} {self.code(e.right, prec + 1)}", prec

    def e_IfExpr(self, e: A.IfExpr) -> tuple[str, int]:
        # `if k in m then m[k] else d` is `m.get(k, d)`
        c = e.cond
        if isinstance(c, A.Binary) and c.op == "in" and isinstance(e.then, A.Index):
            m = c.right.args[0].value if self._builtin_call(c.right) == "keys" else c.right
            if isinstance(self.program.types.get(m), T.MapT) \
                    and A.same_shape(e.then.obj, m) and A.same_shape(e.then.index, c.left):
                return ((f"{self.code(m, P_POSTFIX)}.get({self.code(c.left)}, "
                        f"{self.code(e.orelse)})"), P_POSTFIX)
        return ((f"{self.code(e.then, P_IF + 1)} if {self.code(e.cond, P_IF + 1)} "
                f"else {self.code(e.orelse, P_IF)}"), P_IF)

    def e_ListLit(self, e: A.ListLit) -> tuple[str, int]:
        return "[" + ", ".join(self.code(x) for x in e.items) + "]", P_ATOM

    def e_RecordLit(self, e: A.RecordLit) -> tuple[str, int]:
        items = [f"{self.s(f.name)}: {self.code(f.value)}" for f in e.fields]
        t = self.program.types.get(e)
        if isinstance(t, T.Optional):
            t = t.inner
        if isinstance(t, T.RecordT):
            given = {f.name for f in e.fields}
            for f in t.fields:
                if f.name in given:
                    continue
                if f.has_default:
                    items.append(f"{self.s(f.name)}: {self.lit(f.default)}")
                elif T.is_optional(f.type):
                    items.append(f"{self.s(f.name)}: None")
        return "{" + ", ".join(items) + "}", P_ATOM

    def e_MapLit(self, e: A.MapLit) -> tuple[str, int]:
        return "{" + ", ".join(f"{self.s(m.key)}: {self.code(m.value)}"
                               for m in e.entries) + "}", P_ATOM

    def e_Comprehension(self, e: A.Comprehension) -> tuple[str, int]:
        var = self.fn.local_name(e.var) if self.fn else e.var
        iterable = self.iterable(e.iterable)
        saved = self.comp_vars.get(e.var)
        self.comp_vars[e.var] = var
        try:
            elem = self.code(e.elem)
            cond = f" if {self.code(e.cond, P_IF + 1)}" if e.cond is not None else ""
        finally:
            if saved is None:
                self.comp_vars.pop(e.var, None)
            else:
                self.comp_vars[e.var] = saved
        return f"[{elem} for {var} in {iterable}{cond}]", P_ATOM

    def e_TryElse(self, e: A.TryElse) -> tuple[str, int]:
        assert self.fn is not None
        return f"await {self.fn.try_else_call(e, self.fn.anon_key(e))}", P_AWAIT

    def e_Call(self, e: A.Call) -> tuple[str, int]:
        target = self.program.calls.get(e)
        if target is None:
            raise NotImplementedError(f"unresolved call at {e.span}")
        if target.kind in ("node", "workflow"):
            assert self.fn is not None
            return f"await {self.fn.step_call(e, self.fn.anon_key(e))}", P_AWAIT
        return self.builtin(target.target, e)

    def _builtin_call(self, e: Any) -> str | None:
        """The builtin ``e`` calls, if it is a builtin call."""
        if isinstance(e, A.Call):
            t = self.program.calls.get(e)
            if t is not None and t.kind == "builtin":
                return t.target
        return None

    def iterable(self, e: A.Expr) -> str:
        """An iterable for ``for``: ``range(n)`` and ``keys(m)`` need no list."""
        name = self._builtin_call(e)
        if name == "range":
            return f"range({self.code(e.args[0].value)})"
        if name == "keys":
            return self.code(e.args[0].value, P_OR)
        return self.code(e, P_OR)

    def builtin(self, name: str, e: A.Call) -> tuple[str, int]:
        args = [a.value for a in e.args]
        ty = [self.program.types.get(a) for a in args]

        def c(i: int, prec: int = P_LAMBDA) -> str:
            return self.code(args[i], prec)

        if name == "len":
            return f"len({c(0)})", P_POSTFIX
        if name == "str":
            if ty[0] == T.STR or isinstance(ty[0], T.EnumT):
                return self.expr(args[0])
            if ty[0] is not None and T.strip_optional(ty[0]) == T.DURATION:
                return f"duration_text({c(0)})", P_POSTFIX
            return f"text({c(0)})", P_POSTFIX
        if name in ("sorted", "len") and self._builtin_call(args[0]) == "keys":
            return f"{name}({self.code(args[0].args[0].value)})", P_POSTFIX
        if name in ("int", "float", "bool", "abs", "sum", "min", "max", "sorted"):
            return f"{name}({c(0)})", P_POSTFIX
        if name == "lower":
            return f"{c(0, P_POSTFIX)}.lower()", P_POSTFIX
        if name == "upper":
            return f"{c(0, P_POSTFIX)}.upper()", P_POSTFIX
        if name == "trim":
            return f"{c(0, P_POSTFIX)}.strip()", P_POSTFIX
        if name == "split":
            sep = args[1]
            if isinstance(sep, A.Literal) and sep.value:
                return f"{c(0, P_POSTFIX)}.split({c(1)})", P_POSTFIX
            return f"{c(0, P_POSTFIX)}.split({c(1)} or None)", P_POSTFIX
        if name == "join":
            items_t = ty[0]
            if isinstance(items_t, T.ListT) and items_t.elem == T.STR:
                return f"{c(1, P_POSTFIX)}.join({c(0)})", P_POSTFIX
            return f"{c(1, P_POSTFIX)}.join(text(x) for x in {c(0, P_OR)})", P_POSTFIX
        if name == "contains":
            return f"{c(1, P_CMP + 1)} in {c(0, P_CMP + 1)}", P_CMP
        if name == "keys":
            return f"list({c(0)})", P_POSTFIX
        if name == "values":
            return f"list({c(0, P_POSTFIX)}.values())", P_POSTFIX
        if name == "round":
            if len(args) == 1:
                return f"round({c(0)})", P_POSTFIX
            if ty[0] == T.FLOAT:
                return f"round({c(0)}, {c(1)})", P_POSTFIX
            return f"float(round({c(0)}, {c(1)}))", P_POSTFIX
        if name == "range":
            return f"list(range({c(0)}))", P_POSTFIX
        if name == "uuid":
            return "str(uuid.uuid4())", P_POSTFIX
        if name == "now":
            return "utc_now()", P_POSTFIX
        if name == "random":
            return "random_float()", P_POSTFIX
        if name in ("env", "secret"):
            return f"os.environ.get({c(0)})", P_POSTFIX
        raise NotImplementedError(f"builtin {name}() at {e.span}")


# ----------------------------------------------------------------------------- statements


@dataclass
class _Item:
    """One simple statement of a straight-line segment."""

    stmt: Any
    binding: Binding | None
    is_step: bool
    reads: set
    effects: frozenset
    level: int = 0


@dataclass
class _Ctx:
    parallel: bool = False
    tx: str | None = None
    #: where `yield` goes: ("append", listvar) | ("return", None) | ("collect", listvar)
    yield_to: tuple[str, str | None] | None = None
    #: inside a concurrent loop body function: `return` is raised as WorkflowReturn
    in_body_fn: bool = False


class FunctionGen:
    """One workflow → one ``async def``."""

    def __init__(self, mod: ModuleGen, wf: WorkflowInfo) -> None:
        self.mod = mod
        self.wf = wf
        self.program = mod.program
        self.w = Writer()
        self.names = Namer(mod.names.taken)
        self.by_name: dict[str, str] = {}
        self.keys: list[set[str]] = [set()]
        self.ex = ExprGen(mod, self)
        self.ctx = _Ctx()
        for kname, pyname in mod.params_of(wf).items():
            self.by_name[kname] = pyname
            self.names.taken.add(pyname)
        for b in self.program.bindings.values():
            if isinstance(b, Binding) and _within(b.span, wf.decl.span):
                self.local_name(b.name)

    # -- names

    def local_name(self, name: str) -> str:
        if name not in self.by_name:
            cand = name if name not in self.mod.names.taken else f"{name}_"
            while cand in self.mod.names.taken:
                cand += "_"
            self.by_name[name] = cand
            self.names.taken.add(cand)
        return self.by_name[name]

    def local(self, b: Binding) -> str:
        return self.local_name(b.name)

    def temp(self, base: str) -> str:
        return self.names.claim(base)

    def key(self, base: str) -> str:
        scope = self.keys[-1]
        key, n = base, 1
        while key in scope:
            n += 1
            key = f"{base}#{n}"
        scope.add(key)
        return key

    def anon_key(self, call: Any) -> str:
        target = self.program.calls.get(call) if isinstance(call, A.Call) else None
        if isinstance(call, A.TryElse):
            target = self.program.calls.get(call.primary)
        name = target.target.name if target is not None and target.kind != "builtin" \
            else "call"
        return self.key(name)

    # -- calls

    def step_call(self, call: A.Call, key: str, stmt: Any = None) -> str:
        """The (not yet awaited) awaitable running step ``key``."""
        target = self.program.calls[call]
        info = target.target
        given = {a.name: a.value for a in call.args if a.name}
        if target.kind == "workflow":
            fn = self.mod.workflow_name(info)
            names = self.mod.params_of(info)
            args = []
            for p in info.params:
                pyname = names[p.name]
                if p.name in given:
                    args.append(f"{pyname}={self.ex.code(given[p.name])}")
                elif p.default is not None:
                    args.append(f"{pyname}={self.ex.code(p.default)}")
            policy = self.program.stmt_policy.get(stmt) if stmt is not None else None
            if policy is not None and (policy.retry is not None
                                       or policy.timeout_ms is not None):
                extra = []
                if policy.retry is not None:
                    extra.append(f"retry={_retry_code(policy.retry)}")
                if policy.timeout_ms is not None:
                    extra.append(f"timeout_ms={_num(policy.timeout_ms)}")
                return (f"subworkflow_retried({py_str(key)}, lambda: {fn}("
                        f"{', '.join(args)}), {', '.join(extra)})")
            return f"subworkflow({py_str(key)}, {fn}({', '.join(args)}))"
        node = self.mod.node(info)
        items = []
        for p in info.params:
            if p.name in given:
                items.append(f"{py_str(p.name)}: {self.ex.code(given[p.name])}")
            elif p.default is not None:
                items.append(f"{py_str(p.name)}: {self.ex.code(p.default)}")
        extra = []
        policy = self.program.stmt_policy.get(stmt) if stmt is not None else None
        if policy is not None:
            if policy.retry is not None:
                extra.append(f"retry={_retry_code(policy.retry)}")
            if policy.timeout_ms is not None:
                extra.append(f"timeout_ms={_num(policy.timeout_ms)}")
        if self.ctx.tx is not None:
            extra.append(f"tx={self.ctx.tx}")
        args = "{" + ", ".join(items) + "}"
        return f"{node}.call({', '.join([py_str(key), args, *extra])})"

    def try_else_call(self, e: A.TryElse, key: str, stmt: Any = None) -> str:
        primary = self.call_of(e.primary, key, stmt)
        fallback = self.call_of(e.fallback, key + ".else", stmt)
        return f"try_else({primary}, {fallback})"

    def call_of(self, e: Any, key: str, stmt: Any = None) -> str:
        if isinstance(e, A.Call) and self.program.calls.get(e) is not None \
                and self.program.calls[e].kind != "builtin":
            return self.step_call(e, key, stmt)
        if isinstance(e, A.TryElse):
            return self.try_else_call(e, key, stmt)
        raise NotImplementedError(f"not a step call at {e.span}")

    # -- analysis

    def _is_step_call(self, e: Any) -> bool:
        if isinstance(e, A.TryElse):
            return self._is_step_call(e.primary) and self._is_step_call(e.fallback)
        if not isinstance(e, A.Call):
            return False
        t = self.program.calls.get(e)
        return t is not None and t.kind in ("node", "workflow") and \
            not any(self._has_step(a.value) for a in e.args)

    def _has_step(self, e: Any) -> bool:
        for sub in A.walk(e):
            if isinstance(sub, (A.TryElse, A.Wait, A.For)):
                return True
            if isinstance(sub, A.Call):
                t = self.program.calls.get(sub)
                if t is not None and t.kind in ("node", "workflow"):
                    return True
        return False

    def _targets(self, e: Any) -> list[Any]:
        out = []
        for sub in A.walk(e):
            if isinstance(sub, A.Call):
                t = self.program.calls.get(sub)
                if t is not None and t.kind in ("node", "workflow"):
                    out.append(t.target)
        return out

    def _reads(self, node: Any) -> set:
        out = set()
        for sub in A.walk(node):
            if isinstance(sub, A.Name):
                ref = self.program.names.get(sub)
                if ref is not None and ref.kind == "local":
                    out.add(id(ref.target))
        return out

    def simple_item(self, s: Any) -> _Item | None:
        """A Let/ExprStmt that can join a straight-line segment, or None."""
        if isinstance(s, A.Let):
            value, when = s.value, s.when
        elif isinstance(s, A.ExprStmt):
            value, when = s.expr, s.when
        else:
            return None
        if isinstance(value, (A.For, A.Wait)):
            return None
        binding = self.program.bindings.get(s) if isinstance(s, A.Let) else None
        is_step = self._is_step_call(value) and (when is None or not self._has_step(when))
        if not is_step and (self._has_step(value) or (when is not None
                                                        and self._has_step(when))):
            return None  # a step nested in an expression: run it on its own
        effects: frozenset = frozenset()
        for t in self._targets(s):
            effects |= _effects_of(t)
        return _Item(s, binding, is_step, self._reads(s), effects)

    # -- body

    def generate(self) -> str:
        wf = self.wf
        name = self.mod.workflow_name(wf)
        params = []
        for p in wf.params:
            pyname = self.by_name[p.name]
            ann = self.mod.hint_ann(p.type)
            default = ""
            if p.default is not None:
                v = const_value(p.default, self.program)
                if v is not NOT_CONST and not _mutable(v) and not isinstance(v, bytes):
                    default = f" = {py_literal(v)}"
            params.append(f"{pyname}: {ann}{default}")
        ret = self.mod.hint_ann(wf.result)
        head = f"async def {name}(" + ("*, " if params else "") + ", ".join(params) + \
            f") -> {ret}:"
        if len(head) > 88:
            self.w.line(f"async def {name}(")
            self.w.indent()
            if params:
                self.w.line("*,")
            for p in params:
                self.w.line(p + ",")
            self.w.dedent()
            self.w.line(f") -> {ret}:")
        else:
            self.w.line(head)
        self.w.indent()
        doc = wf.doc or f"The workflow `{wf.qualname}`."
        for ln in _docstring(doc, 0):
            self.w.line(ln)
        self.ctx = _Ctx()
        start = len(self.w.lines)
        self.block(wf.decl.body.stmts)
        if self.w.lines[-1] == "    return" and len(self.w.lines) > start + 1:
            self.w.lines.pop()  # a bare `return` at the end says nothing
        self.w.dedent()
        return self.w.text()

    def block(self, stmts: tuple, ctx: _Ctx | None = None) -> None:
        saved = self.ctx
        if ctx is not None:
            self.ctx = ctx
        start = len(self.w.lines)
        segment: list[_Item] = []
        for s in stmts:
            item = self.simple_item(s) if self.ctx.tx is None else None
            if item is None and self.ctx.tx is not None and \
                    isinstance(s, (A.Let, A.ExprStmt)):
                item = self.simple_item(s)
                if item is not None:
                    self.segment([item])
                    continue
            if item is not None:
                segment.append(item)
                continue
            self.segment(segment)
            segment = []
            self.statement(s)
        self.segment(segment)
        if len(self.w.lines) == start:
            self.w.line("pass")
        self.ctx = saved

    # -- segments

    def segment(self, items: list[_Item]) -> None:
        if not items:
            return
        made: dict[int, _Item] = {}
        for i, it in enumerate(items):
            deps = [made[r] for r in it.reads if r in made]
            if it.is_step:
                level = max((d.level + 1 for d in deps), default=0)
                if not self.ctx.parallel:
                    for prev in items[:i]:
                        if prev.is_step and _conflict(prev.effects, it.effects):
                            level = max(level, prev.level + 1)
                it.level = level
            else:
                # a pure value is ready after the layer of its last step dependency
                it.level = max((d.level for d in deps), default=-1)
            if it.binding is not None:
                made[id(it.binding)] = it
        top = max(it.level for it in items)
        for level in range(-1, top + 1):
            steps = [it for it in items if it.is_step and it.level == level]
            if steps:
                self.layer(steps)
            for it in items:
                if not it.is_step and it.level == level:
                    self.value(it)

    def _key_of(self, it: _Item) -> str:
        s = it.stmt
        if isinstance(s, A.Let):
            return self.key(s.name)
        return self.anon_key(s.expr)

    def _awaitable(self, it: _Item, key: str) -> str:
        s = it.stmt
        value = s.value if isinstance(s, A.Let) else s.expr
        call = self.call_of(value, key, s)
        return call

    def layer(self, steps: list[_Item]) -> None:
        if len(steps) == 1:
            it = steps[0]
            key = self._key_of(it)
            call = self._awaitable(it, key)
            when = it.stmt.when
            target = self._target_of(it)
            rhs = f"await {call}"
            if when is not None:
                rhs = f"{rhs} if {self.ex.code(when, P_IF + 1)} else None"
            self._assign(target, rhs)
            return
        targets, calls = [], []
        for it in steps:
            key = self._key_of(it)
            call = self._awaitable(it, key)
            if it.stmt.when is not None:
                call = f"{call} if {self.ex.code(it.stmt.when, P_IF + 1)} else skipped()"
            targets.append(self._target_of(it) or "_")
            calls.append(call)
        lhs = ", ".join(targets)
        if all(t == "_" for t in targets):
            self.w.line("await gather(")
        else:
            self.w.line(f"{lhs} = await gather(")
        self.w.indent()
        for c in calls:
            self.w.line(c + ",")
        self.w.dedent()
        self.w.line(")")

    def _target_of(self, it: _Item) -> str | None:
        if isinstance(it.stmt, A.Let) and self._used(it.stmt):
            return self.local_name(it.stmt.name)
        return None

    def _used(self, s: A.Let) -> bool:
        b = self.program.bindings.get(s)
        return b is None or b.used

    def _assign(self, target: str | None, rhs: str) -> None:
        if target is None:
            self.w.line(rhs)
        else:
            self.w.line(f"{target} = {rhs}")

    def value(self, it: _Item) -> None:
        s = it.stmt
        if isinstance(s, A.Let) and not self._used(s):
            self.w.line(f"# `{s.name}` is never used")
            return
        if isinstance(s, A.Let):
            code = self.ex.code(s.value)
            if s.when is not None:
                code = f"{self.ex.code(s.value, P_IF + 1)} if " \
                       f"{self.ex.code(s.when, P_IF + 1)} else None"
            self.w.line(f"{self.local_name(s.name)} = {code}")
            return
        # an expression statement without a step (a builtin call for nothing)
        code = self.ex.code(s.expr)
        if s.when is not None:
            self.w.line(f"if {self.ex.code(s.when)}:")
            self.w.indent()
            self.w.line(code)
            self.w.dedent()
        else:
            self.w.line(code)

    # -- other statements

    def statement(self, s: Any) -> None:
        m = getattr(self, "s_" + type(s).__name__, None)
        if m is None:
            raise NotImplementedError(f"cannot emit {type(s).__name__} at {s.span}")
        m(s)

    def s_Let(self, s: A.Let) -> None:
        name = self.local_name(s.name)
        value = s.value
        if isinstance(value, A.For):
            key = self.key(s.name)
            self.loop(value, key, name, s)
            return
        if isinstance(value, A.Wait):
            self.key(s.name)
            line = f"{name} = await {self.wait_call(value, s)}"
            self._guarded(s.when, line)
            return
        # a let whose value has a step nested in an expression
        key_owner = s.name
        self.key(key_owner)
        if s.when is not None:
            self.w.line(f"{name} = None")
            self.w.line(f"if {self.ex.code(s.when)}:")
            self.w.indent()
            self.w.line(f"{name} = {self.ex.code(value)}")
            self.w.dedent()
        else:
            self.w.line(f"{name} = {self.ex.code(value)}")

    def s_ExprStmt(self, s: A.ExprStmt) -> None:
        e = s.expr
        if isinstance(e, A.Wait):
            self.key("wait")
            self._guarded(s.when, f"await {self.wait_call(e, s)}")
            return
        self._guarded(s.when, self.ex.code(e))

    def _guarded(self, when: Any, line: str) -> None:
        if when is None:
            self.w.line(line)
            return
        self.w.line(f"if {self.ex.code(when)}:")
        self.w.indent()
        self.w.line(line)
        self.w.dedent()

    def wait_call(self, w: A.Wait, stmt: Any) -> str:
        ptype = self.program.waits.get(w, T.JSON)
        ann = self.mod.ann(ptype, _pascal(w.signal) + "Signal")
        timeout = self.ex.code(w.timeout) if w.timeout is not None else "None"
        return f"wait_signal({py_str(w.signal)}, {timeout}, TypeAdapter({ann}))"

    def s_If(self, s: A.If) -> None:
        for i, (cond, block) in enumerate(s.branches):
            kw = "if" if i == 0 else "elif"
            self.w.line(f"{kw} {self.ex.code(cond)}:")
            self.w.indent()
            self.block(block.stmts)
            self.w.dedent()
        if s.orelse is not None:
            self.w.line("else:")
            self.w.indent()
            self.block(s.orelse.stmts)
            self.w.dedent()

    def s_For(self, s: A.For) -> None:
        self.loop(s, self.key(s.var), None, s)

    def loop(self, f: A.For, key: str, result: str | None, stmt: Any) -> None:
        policy = self.program.stmt_policy.get(stmt) or self.program.stmt_policy.get(f)
        conc = policy.concurrency if policy is not None and policy.concurrency else 1
        var = self.local_name(f.var)
        iterable = self.ex.iterable(f.iterable)
        has_steps = self._has_step(f.body)
        yields = [y for y in _own_yields(f.body)]
        if conc > 1 and has_steps:
            self._concurrent_loop(f, key, result, var, iterable, conc, yields)
            return
        if result is not None:
            elem = self.mod.hint_ann(self._yield_type(f))
            self.w.line(f"{result}: list[{elem}] = []")
        self.keys.append(set())
        if has_steps:
            index = self.temp("i")
            self.w.line(f"for {index}, {var} in enumerate({iterable}):")
            self.w.indent()
            self.w.line(f"with step_scope(f{py_str(key + '[{' + index + '}].')}):")
            self.w.indent()
        else:
            self.w.line(f"for {var} in {iterable}:")
            self.w.indent()
        ctx = _Ctx(self.ctx.parallel, self.ctx.tx,
                   ("append", result) if result is not None else None, self.ctx.in_body_fn)
        self.block(f.body.stmts, ctx)
        if has_steps:
            self.w.dedent()
        self.w.dedent()
        self.keys.pop()

    def _yield_type(self, f: A.For) -> T.Type:
        for y in _own_yields(f.body):
            t = self.program.types.get(y.value)
            if t is not None:
                return t
        return T.JSON

    def _concurrent_loop(self, f: A.For, key: str, result: str | None, var: str,
                         iterable: str, conc: int, yields: list) -> None:
        body_fn = self.temp(f"{snake_case(key.split('#')[0])}_body"
                            if key[:1].isalpha() else "loop_body")
        single = (len(yields) == 1 and f.body.stmts and f.body.stmts[-1] is yields[0])
        elem = self.mod.hint_ann(self._yield_type(f)) if yields else "None"
        ret = elem if single else (f"list[{elem}]" if yields else "None")
        has_return = any(isinstance(x, A.Return) for x in A.walk(f.body))
        if self.w.lines and not self.w.lines[-1].rstrip().endswith(":"):
            self.w.line("")
        self.w.line(f"async def {body_fn}({var}: Any) -> {ret}:")
        self.w.indent()
        self.keys.append(set())
        out = None
        if yields and not single:
            out = self.temp("out")
            self.w.line(f"{out}: list[{elem}] = []")
        mode = ("return", None) if single else (("append", out) if out else None)
        ctx = _Ctx(self.ctx.parallel, self.ctx.tx, mode, True)
        self.block(f.body.stmts, ctx)
        if out:
            self.w.line(f"return {out}")
        self.keys.pop()
        self.w.dedent()
        self.w.line("")
        call = f"await for_each({py_str(key)}, {iterable}, {body_fn}, {conc})"
        if has_return:
            self.w.line("try:")
            self.w.indent()
        if result is None:
            self.w.line(call)
        elif single:
            self.w.line(f"{result} = {call}")
        else:
            parts = self.temp("parts")
            item = self.temp("item")
            self.w.line(f"{parts} = {call}")
            self.w.line(f"{result} = [{item} for part in {parts} for {item} in part]")
        if has_return:
            self.w.dedent()
            self.w.line("except WorkflowReturn as done:")
            self.w.indent()
            self.w.line("return done.value" if not self.ctx.in_body_fn else "raise")
            self.w.dedent()

    def s_Yield(self, s: A.Yield) -> None:
        mode = self.ctx.yield_to
        code = self.ex.code(s.value)
        if mode is None:
            raise NotImplementedError(f"yield outside a yielding loop at {s.span}")
        if mode[0] == "return":
            self.w.line(f"return {code}")
        else:
            self.w.line(f"{mode[1]}.append({code})")

    def s_Parallel(self, s: A.Parallel) -> None:
        self.w.line("# parallel: these steps may run together even when their effects "
                    "conflict")
        self.block(s.body.stmts, _Ctx(True, self.ctx.tx, self.ctx.yield_to,
                                      self.ctx.in_body_fn))

    def s_Transaction(self, s: A.Transaction) -> None:
        plan = self.program.transactions.get(s)
        pattern = plan.pattern if plan is not None else (s.kind or "saga")
        if pattern not in ("saga", "2pc"):
            pattern = "saga"
        self.key("tx")
        tx = self.temp("tx")
        if plan is not None and plan.reason:
            for ln in plan.reason.splitlines():
                self.w.line(f"# {pattern}: {ln}".rstrip())
        self.w.line(f"async with Transaction({py_str(pattern)}) as {tx}:")
        self.w.indent()
        self.block(s.body.stmts, _Ctx(self.ctx.parallel, tx, self.ctx.yield_to,
                                      self.ctx.in_body_fn))
        self.w.dedent()

    def s_Try(self, s: A.Try) -> None:
        self.key("try")
        self.w.line("try:")
        self.w.indent()
        self.block(s.body.stmts)
        self.w.dedent()
        exc = self.temp("exc")
        err = self.temp("error")
        self.w.line(f"except CATCHABLE as {exc}:")
        self.w.indent()
        self.w.line(f"{err} = error_of({exc})")
        catch_all = False
        for i, c in enumerate(s.catches):
            if c.kinds:
                kinds = ", ".join(py_str(k) for k, _ in c.kinds)
                cond = f"{err}.kind == {py_str(c.kinds[0][0])}" if len(c.kinds) == 1 \
                    else f"{err}.kind in ({kinds})"
                self.w.line(f"{'if' if i == 0 else 'elif'} {cond}:")
            elif i == 0:
                catch_all = True
                self._catch_body(c, err)
                break
            else:
                catch_all = True
                self.w.line("else:")
            self.w.indent()
            self._catch_body(c, err)
            self.w.dedent()
            if catch_all:
                break
        if not catch_all:
            self.w.line("else:")
            self.w.indent()
            self.w.line("raise")
            self.w.dedent()
        self.w.dedent()

    def _catch_body(self, c: A.Catch, err: str) -> None:
        if c.binding:
            self.w.line(f"{self.local_name(c.binding)} = {err}.to_dict()")
        self.block(c.body.stmts)

    def s_Sleep(self, s: A.Sleep) -> None:
        self.key("sleep")
        d = s.duration
        if isinstance(d, A.Literal) and isinstance(d.value, int):
            secs = d.value / 1000
            code = str(int(secs)) if secs == int(secs) else repr(secs)
            self.w.line(f"await asyncio.sleep({code})  # sleep {_fmt_ms(d.value)}")
        else:
            self.w.line(f"await asyncio.sleep({self.ex.code(d, P_MUL)} / 1000)")

    def s_Emit(self, s: A.Emit) -> None:
        self.key("emit")
        value = self.ex.code(s.value) if s.value is not None else "None"
        self.w.line(f"emit_event({py_str(s.name)}, {value})")

    def s_Checkpoint(self, s: A.Checkpoint) -> None:
        self.key("checkpoint")
        self.w.line("# checkpoint: there is no journal to flush in the ejected module")

    def s_Return(self, s: A.Return) -> None:
        self.key("return")
        if (s.value is None or _is_null(s.value)) and not self.ctx.in_body_fn:
            self.w.line("return")
            return
        value = self.ex.code(s.value) if s.value is not None else "None"
        if self.ctx.in_body_fn:
            self.w.line(f"raise WorkflowReturn({value})")
        else:
            self.w.line(f"return {value}")

    def s_Fail(self, s: A.Fail) -> None:
        key = self.key("fail")
        kind = s.kind or "Failed"
        self.w.line(f"raise KflowError({py_str(kind)}, {self.ex.code(s.message)}, "
                    f"step_key({py_str(key)}))")


def _is_null(e: Any) -> bool:
    return isinstance(e, A.Literal) and e.kind == "null"


def _cheap(e: Any) -> bool:
    """A pure expression cheap enough to write twice: a name or a chain of fields."""
    if isinstance(e, A.Name):
        return True
    if isinstance(e, A.Attribute) and not e.optional:
        return _cheap(e.obj)
    return False


def _fmt_ms(ms: int) -> str:
    from ..durations import format_duration
    return format_duration(ms)


def _own_yields(block: A.Block) -> list[A.Yield]:
    """The `yield`s of this loop body (not those of loops nested in it)."""
    out = []

    def visit(node: Any) -> None:
        if isinstance(node, A.Yield):
            out.append(node)
            return
        if isinstance(node, A.For):
            return
        if isinstance(node, A.Block):
            for s in node.stmts:
                visit(s)
            return
        for attr in ("body", "orelse"):
            sub = getattr(node, attr, None)
            if isinstance(sub, A.Block):
                visit(sub)
        if isinstance(node, A.If):
            for _, b in node.branches:
                visit(b)
        if isinstance(node, A.Try):
            for c in node.catches:
                visit(c.body)

    for s in block.stmts:
        visit(s)
    return out


def _within(span: A.Span, outer: A.Span) -> bool:
    return span.file == outer.file and (outer.line, outer.column) <= (span.line, span.column) \
        and (span.end_line, span.end_column) <= (outer.end_line, outer.end_column)


# ----------------------------------------------------------------------------- module


def _called_workflows(program: Program) -> list[WorkflowInfo]:
    """The entry file's workflows, then every workflow they call (imports too)."""
    order: list[WorkflowInfo] = []
    seen: set[int] = set()
    stack = list(reversed(program.workflows()))
    while stack:
        wf = stack.pop()
        if id(wf) in seen:
            continue
        seen.add(id(wf))
        order.append(wf)
        callees = []
        for sub in A.walk(wf.decl.body):
            if isinstance(sub, A.Call):
                t = program.calls.get(sub)
                if t is not None and t.kind == "workflow" and id(t.target) not in seen:
                    callees.append(t.target)
        stack.extend(reversed(callees))
    return order


def emit(program: Program, source: str | None = None) -> str:
    mod = ModuleGen(program)
    src = source or Path(program.entry.path).name
    workflows = _called_workflows(program)
    entry = program.workflows()
    # names first, so the workflows keep the plainest names
    for wf in workflows:
        mod.workflow_name(wf)
    for wf in workflows:
        for sub in A.walk(wf.decl.body):
            if isinstance(sub, A.Call):
                t = program.calls.get(sub)
                if t is not None and t.kind == "node":
                    mod.node(t.target)
            ref = program.names.get(sub) if isinstance(sub, (A.Name, A.Attribute)) else None
            if ref is not None and ref.kind == "const":
                mod.const(ref.target)
    # the declared types of the file, in source order
    from .jsonschema import declared_types
    for sym in declared_types(program):
        if isinstance(sym.type, (T.RecordT, T.EnumT)):
            mod.ann(sym.type, sym.name)
    bodies = []
    registry = []
    input_blocks = []
    for wf in workflows:
        gen = FunctionGen(mod, wf)
        bodies.append(gen.generate())
    for wf in entry:
        in_name = _input_model(mod, wf)
        out = mod.ann(wf.result, _pascal(wf.name) + "Output")
        registry.append(f"{py_str(wf.name)}: Workflow({mod.workflow_name(wf)}, {in_name}, "
                        f"TypeAdapter({out})),")
        input_blocks.append(in_name)
    # long registry lines: wrap
    reg_lines = []
    for line in registry:
        if len(line) + 4 > 88:
            head, rest = line.split(": Workflow(", 1)
            args = rest[:-2].split(", ")
            reg_lines.append(f"{head}: Workflow(")
            reg_lines += [f"    {a}," for a in args]
            reg_lines.append("),")
        else:
            reg_lines.append(line)
    usage = []
    for wf in entry:
        flag = f" --workflow {wf.name}" if len(entry) > 1 else ""
        usage.append(f"python {Path(src).stem}.py{flag} --input '{_example_input(wf)}'")
    if not usage:
        usage.append(f"(the file declares no workflow: import {Path(src).stem} to use it)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
                             keep_trailing_newline=True, autoescape=False,
                             undefined=jinja2.StrictUndefined)
    template = env.get_template("module.py.j2")
    title = f"The kflow module `{program.entry.name}`, ejected to Python."
    text = template.render(
        shebang="#!/usr/bin/env python3",
        title=title,
        source=src,
        usage=usage,
        literal=mod.uses_literal,
        imports=mod.import_lines(),
        prelude=mod.prelude,
        types=wrap("\n\n\n".join(mod.type_blocks)) or "# (no types)",
        consts=wrap("\n".join(mod.const_blocks)),
        nodes=wrap("\n\n".join(mod.node_blocks)) or "# (no nodes)",
        workflows=wrap("\n\n\n".join(bodies)),
        registry=reg_lines,
        entry=", ".join(py_str(wf.name) for wf in entry),
    )
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.rstrip("\n") + "\n"


def _input_model(mod: ModuleGen, wf: WorkflowInfo) -> str:
    name = mod.names.claim(_pascal(wf.name) + "Input")
    lines = [f"class {name}(BaseModel):"]
    lines += _docstring(f"The input of `{wf.name}`.", 1)
    lines.append("")
    lines.append("    model_config = INPUT_CONFIG")
    if wf.params:
        lines.append("")
    names = mod.params_of(wf)
    for p in wf.params:
        pyname = names[p.name]
        ann = mod.ann(p.type, _pascal(wf.name) + _pascal(p.name))
        alias = f"alias={py_str(p.name)}" if pyname != p.name else None
        default = None
        if p.default is not None:
            v = const_value(p.default, mod.program)
            if v is NOT_CONST:
                default = f"lambda: {ExprGen(mod, None).code(p.default)}"
            elif _mutable(v):
                default = _factory(v)
            else:
                default = py_literal(v)
        elif T.is_optional(p.type) or p.type == T.JSON:
            default = "None"
        if default is None and alias is None:
            lines.append(f"    {pyname}: {ann}")
        elif alias is None and not _is_factory(default):
            lines.append(f"    {pyname}: {ann} = {default}")
        else:
            mod.uses_field = True
            parts = []
            if default is not None:
                parts.append(f"default_factory={default}" if _is_factory(default)
                             else f"default={default}")
            if alias:
                parts.append(alias)
            lines.append(f"    {pyname}: {ann} = Field({', '.join(parts)})")
    mod.type_blocks.append("\n".join(lines))
    return name


def _example_input(wf: WorkflowInfo) -> str:
    import json

    def sample(t: T.Type) -> Any:
        t = T.strip_optional(t)
        if isinstance(t, T.Prim):
            return {"int": 1, "float": 1.5, "str": "text", "bool": True, "null": None,
                    "json": {}, "bytes": "", "duration": "30s"}[t.name]
        if isinstance(t, T.ListT):
            return []
        if isinstance(t, T.MapT):
            return {}
        if isinstance(t, T.EnumT):
            return t.members[0] if t.members else ""
        if isinstance(t, T.RecordT):
            return {f.name: sample(f.type) for f in t.fields if not f.has_default}
        return None

    data = {p.name: sample(p.type) for p in wf.params if not p.has_default}
    return json.dumps(data, ensure_ascii=False).replace("'", "'\\''")
