"""Loading a module and everything it imports (§2).

* Every file is parsed once per process: the AST is cached by absolute path and the
  file's ``(mtime_ns, size)``, so re-checking an unchanged file (a folder check, the
  runtime reloading a program, ``kflow serve``) never re-parses it.
* ``import std.X [as y]`` resolves to ``kailash_dsl/stdlib/X.kflow`` (module name
  ``std.X``); ``import "./x.kflow" as x`` resolves against the importing file's folder;
  ``import a.b`` (not ``std``) looks for ``a/b.kflow`` next to the importing file.
* An unknown import is reported (E0104) at the ``import``, in the file that has it.
  An import cycle is reported once, at the import *in the entry file* that leads into
  it (§12): see :meth:`Loader.cycle_diagnostics`.

The loader builds :class:`ModuleInfo` objects (one per file, per :class:`Loader`) with
their ``imports`` resolved; filling each module's scope with its declarations is the
checker's job.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, did_you_mean, error
from ..grammar import ast as A
from .program import ModuleInfo

STDLIB_DIR = Path(__file__).resolve().parent.parent / "stdlib"


# ---------------------------------------------------------------------------- parse cache


@dataclass
class _Parsed:
    stamp: tuple[int, int]
    display: str
    module: A.Module | None
    diagnostics: list[Diagnostic]


_CACHE: dict[str, _Parsed] = {}
_CACHE_LOCK = threading.Lock()


def display_path(abs_path: str) -> str:
    """How a file is named in diagnostics: relative to the working folder when below it."""
    try:
        rel = os.path.relpath(abs_path)
    except ValueError:  # another drive on Windows
        return abs_path
    if rel.startswith(".." + os.sep) or rel == "..":
        return abs_path
    return rel


def parse_cached(abs_path: str) -> tuple[A.Module | None, list[Diagnostic]]:
    """Parse ``abs_path`` once per (path, mtime, size). Raises OSError when unreadable."""
    st = os.stat(abs_path)
    stamp = (st.st_mtime_ns, st.st_size)
    disp = display_path(abs_path)
    hit = _CACHE.get(abs_path)
    if hit is not None and hit.stamp == stamp and hit.display == disp:
        return hit.module, hit.diagnostics
    from ..grammar.parser import parse_file

    module, diags = parse_file(disp)
    with _CACHE_LOCK:
        _CACHE[abs_path] = _Parsed(stamp, disp, module, list(diags))
    return module, list(diags)


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def empty_module(path: str, name: str) -> A.Module:
    """The stand-in AST of a file that could not be parsed."""
    span = A.Span(path, 1, 1, 1, 1)
    return A.Module(path, name, None, (), (), (), span)


def std_modules() -> list[str]:
    """Names of the standard library modules shipped with the package (``std.core``...)."""
    if not STDLIB_DIR.is_dir():
        return []
    return sorted("std." + p.stem for p in STDLIB_DIR.glob("*.kflow"))


# ---------------------------------------------------------------------------- loader


class Loader:
    """Loads modules and their imports; one instance per check session."""

    def __init__(self, overlay: Mapping[str, str] | None = None) -> None:
        #: absolute path -> text that stands for the file on disk (an editor's unsaved
        #: buffers, so a change in one open file is seen by the files importing it)
        self.overlay = overlay or {}
        self.modules: dict[str, ModuleInfo] = {}  # by absolute path
        #: problems found while loading, by module path (syntax errors, unknown imports)
        self.diagnostics: dict[str, list[Diagnostic]] = {}

    # -- public ------------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> ModuleInfo:
        """Load the file at ``path`` and (recursively) its imports."""
        abs_path = os.path.abspath(os.fspath(path))
        return self._load(abs_path, None)

    def all_diagnostics(self) -> list[Diagnostic]:
        return [d for ds in self.diagnostics.values() for d in ds]

    def reachable(self, root: ModuleInfo) -> list[ModuleInfo]:
        """``root`` and every module it imports, transitively (each once, root first)."""
        out: list[ModuleInfo] = []
        seen: set[int] = set()
        stack = [root]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            out.append(m)
            for _, target in reversed(m.imported):
                if target is not None:
                    stack.append(target)
        return out

    def cycle_diagnostics(self, entry: ModuleInfo) -> list[Diagnostic]:
        """E0104 at each import of ``entry`` that leads into an import cycle."""
        out = []
        for imp, target in entry.imported:
            if target is None:
                continue
            chain = self._cycle_from(target, [entry])
            if chain is not None:
                names = " → ".join(f"`{_short(m)}`" for m in chain)
                help = ("modules cannot import each other; move the shared declarations "
                        "into a third module that both import")
                if target is entry:
                    help = "a module cannot import itself; use its declarations directly"
                out.append(error("E0104", f"import cycle: {names}", imp.span, help=help))
        return out

    def name_clash_diagnostics(self, entry: ModuleInfo) -> list[Diagnostic]:
        """E0103 at an import that brings in a second module with an already-used name
        (qualified names like ``utils.Charge`` must be unique within one program)."""
        out = []
        first: dict[str, ModuleInfo] = {}
        for m in self.reachable(entry):
            other = first.setdefault(m.name, m)
            if other is m:
                continue
            for importer in self.reachable(entry):
                for imp, target in importer.imported:
                    if target is m:
                        out.append(error(
                            "E0103", f"module name `{m.name}` is already used by "
                                     f"`{display_path(other.path)}`", imp.span,
                            help=f"give one of the files its own name with a `module` "
                                 f"declaration, e.g. `module {_suggest(m)}`"))
        return out

    # -- internals -----------------------------------------------------------------
    def _cycle_from(self, start: ModuleInfo, prefix: list[ModuleInfo]):
        """The import chain from ``prefix`` through ``start`` that comes back to a module
        already on it (e.g. a → b → a), or None when ``start`` leads into no cycle."""
        on_path: list[ModuleInfo] = list(prefix)
        done: set[int] = set()

        def dfs(m: ModuleInfo):
            if any(m is p for p in on_path):
                return on_path + [m]
            if id(m) in done:
                return None
            on_path.append(m)
            for _, t in m.imported:
                if t is not None:
                    found = dfs(t)
                    if found is not None:
                        return found
            on_path.pop()
            done.add(id(m))
            return None

        return dfs(start)

    def load_source(self, text: str, path: str) -> ModuleInfo:
        """Load source text as the file ``path`` (not read from disk, not cached); its
        imports resolve next to ``path``."""
        from ..grammar.parser import parse

        abs_path = os.path.abspath(path)
        ast, diags = parse(text, path)
        return self._build(abs_path, path, ast, list(diags), None)

    def _load(self, abs_path: str, std_name: str | None) -> ModuleInfo:
        existing = self.modules.get(abs_path)
        if existing is not None:
            return existing
        disp = display_path(abs_path)
        diags: list[Diagnostic] = []
        try:
            text = self.overlay.get(abs_path)
            if text is not None:
                from ..grammar.parser import parse

                ast, parse_diags = parse(text, disp)
            else:
                ast, parse_diags = parse_cached(abs_path)
            diags.extend(parse_diags)
        except OSError as exc:
            ast = None
            diags.append(error("E0104", f"cannot read `{disp}`: {exc.strerror or exc}",
                               A.Span(disp, 1, 1, 1, 1)))
        return self._build(abs_path, disp, ast, diags, std_name)

    def _build(self, abs_path: str, disp: str, ast: A.Module | None,
               diags: list[Diagnostic], std_name: str | None) -> ModuleInfo:
        failed = ast is None
        if ast is None:
            ast = empty_module(disp, std_name or Path(abs_path).stem)
        name = std_name or ast.name
        info = ModuleInfo(path=abs_path, name=name, ast=ast, is_std=std_name is not None)
        info.parse_failed = failed
        self.modules[abs_path] = info
        self.diagnostics[abs_path] = diags
        for imp in ast.imports:
            target = self._resolve_import(info, imp, diags)
            info.imported.append((imp, target))
        return info

    def _resolve_import(self, info: ModuleInfo, imp: A.Import,
                        diags: list[Diagnostic]) -> ModuleInfo | None:
        here = Path(info.path).parent
        if not imp.is_file and (imp.target == "std" or imp.target.startswith("std.")):
            stem = imp.target[4:]
            candidate = STDLIB_DIR / (stem.replace(".", "/") + ".kflow")
            if stem and candidate.is_file():
                return self._load(str(candidate.resolve()), imp.target)
            known = std_modules()
            guess = did_you_mean(imp.target, known)
            help = f"did you mean `{guess}`?" if guess else (
                "the standard library has " + ", ".join(f"`{k}`" for k in known)
                if known else None)
            diags.append(error("E0104", f"unknown standard module `{imp.target}`",
                               imp.target_span, help=help))
            return None
        if imp.is_file:
            rel = imp.target
            candidate = Path(rel) if os.path.isabs(rel) else here / rel
            tries = [candidate]
            if candidate.suffix != ".kflow":
                tries.append(candidate.with_name(candidate.name + ".kflow"))
        else:
            candidate = here / (imp.target.replace(".", "/") + ".kflow")
            tries = [candidate]
        for c in tries:
            found = os.path.abspath(os.path.normpath(str(c)))
            if found in self.overlay or c.is_file():
                return self._load(found, None)
        shown = display_path(os.path.abspath(os.path.normpath(str(tries[0]))))
        what = f'"{imp.target}"' if imp.is_file else f"`{imp.target}`"
        help = None
        folder = tries[0].parent
        if folder.is_dir():
            names = [p.name for p in folder.glob("*.kflow")]
            guess = did_you_mean(tries[0].name, names)
            if guess:
                help = f"did you mean `{guess}`?"
        if help is None and not imp.is_file:
            help = ("file imports are written `import \"./name.kflow\" as name`; "
                    "standard modules are `std.<name>`")
        diags.append(error("E0104", f"cannot find the module {what} (looked for `{shown}`)",
                           imp.target_span, help=help))
        return None


def _suggest(m: ModuleInfo) -> str:
    parent = Path(m.path).parent.name or "lib"
    return f"{parent}.{m.name}" if parent.isidentifier() else f"my.{m.name}"


def _short(m: ModuleInfo) -> str:
    if m.is_std:
        return m.name
    return os.path.basename(m.path)


def load(path: str | os.PathLike) -> tuple[ModuleInfo, list[Diagnostic]]:
    """Load ``path`` and its imports: the entry ModuleInfo and the loading diagnostics
    (syntax errors, unknown imports, and import cycles at the entry's imports)."""
    loader = Loader()
    entry = loader.load(path)
    return entry, (loader.all_diagnostics() + loader.cycle_diagnostics(entry)
                   + loader.name_clash_diagnostics(entry))
