"""The compile pipeline — check, lower, optimise, generate — and its on-disk cache.

``compile_file(path)`` is what ``kflow run`` calls: on a cache hit (same kflow version,
same source bytes of the entry file and every file it imports) it skips parsing and
checking entirely and unpickles the compiled program (``$XDG_CACHE_HOME/kflow``, or
``$KFLOW_CACHE_DIR``). Only a miss imports the checker, networkx and the passes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .. import __version__
from ..diagnostics import Diagnostic
from . import bytecode as B
from .program import Program




def _sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("KFLOW_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(xdg) / "kflow"


_COMPILER_STAMP: str | None = None


def _compiler_stamp() -> str:
    """Sizes and mtimes of the compiler's own sources: a changed compiler (an upgrade,
    or a developer's edit under the same version) never reuses stale bytecode."""
    global _COMPILER_STAMP
    if _COMPILER_STAMP is None:
        here = Path(__file__).resolve().parent
        parts = []
        grammar = here.parent / "grammar"
        for f in sorted([*here.glob("*.py"), *here.glob("passes/*.py"),
                         *grammar.glob("*.py"), *grammar.glob("*.lark")]):
            try:
                st = f.stat()
            except OSError:
                continue
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        _COMPILER_STAMP = _sha("|".join(parts).encode())
    return _COMPILER_STAMP


def _cache_key(path: Path, disabled: tuple[str, ...]) -> str:
    return _sha(f"{__version__}|{B.FORMAT_VERSION}|{_compiler_stamp()}|{path.resolve()}|"
                f"{','.join(disabled)}|{os.environ.get('KFLOW_DISABLE_PASSES', '')}".encode())


def _cached(path: Path, disabled: tuple[str, ...]) -> B.CompiledProgram | None:
    f = _cache_dir() / (_cache_key(path, disabled) + ".kfc")
    try:
        data = f.read_bytes()
    except OSError:
        return None
    prog = B.loads(data)
    if prog is None:
        return None
    for src, digest in prog.sources.items():
        try:
            if _sha(Path(src).read_bytes()) != digest:
                return None
        except OSError:
            return None
    return prog


def _store(path: Path, disabled: tuple[str, ...], prog: B.CompiledProgram) -> None:
    d = _cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{os.getpid()}.tmp"
        tmp.write_bytes(B.dumps(prog))
        os.replace(tmp, d / (_cache_key(path, disabled) + ".kfc"))
    except OSError:
        pass  # the cache is an optimisation; a read-only home must not break runs


def compile_program(program: Program, disabled: tuple[str, ...] = ()) -> B.CompiledProgram:
    from .codegen import generate
    from .ir import build_ir
    from .passes import run_passes

    ir = run_passes(build_ir(program), disabled)
    prog = generate(ir)
    sources = {}
    for mod in program.modules.values():
        p = Path(mod.path)
        if not mod.is_std or p.exists():
            try:
                sources[str(p.resolve())] = _sha(p.read_bytes())
            except OSError:
                pass
    prog.sources = sources
    prog.program_hash = B.program_hash(prog)
    return prog


def compile_file(path: str | Path, *, use_cache: bool = True,
                 disabled: tuple[str, ...] = ()) -> tuple[B.CompiledProgram | None,
                                                          list[Diagnostic]]:
    """Check and compile ``path``. Returns (program or None on errors, diagnostics)."""
    p = Path(path)
    if use_cache:
        hit = _cached(p, disabled)
        if hit is not None:
            return hit, []
    from .api import load_program

    program = load_program(str(p))
    if program.has_errors:
        return None, program.diagnostics
    prog = compile_program(program, disabled)
    if use_cache:
        _store(p, disabled, prog)
    return prog, program.diagnostics


def build_ir_for(path: str | Path, disabled: tuple[str, ...] = ()):
    """Checked program + optimised IR, for `kflow graph` and tests."""
    from .api import load_program
    from .ir import build_ir
    from .passes import run_passes

    program = load_program(str(path))
    if program.has_errors:
        return None, program.diagnostics
    return run_passes(build_ir(program), disabled), program.diagnostics


