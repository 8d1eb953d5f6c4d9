"""Shared fixtures: the conformance folder beside the repo, and the `kflow` CLI.

``kflow(*args)`` runs the command line in this process (fast; exceptions surface as
test failures with a traceback). ``kflow_proc(*args)`` runs it as a real subprocess
(``python -m kailash_dsl``) for what only a process shows: exit status, stderr without
tracebacks, cold start.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (spec, conformance cases, schemas); skips visibly when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared not found: conformance cases unavailable")
    return SHARED


def _run_in_process(args, cwd=None, env=None, stdin: str | None = None) -> CliResult:
    from kailash_dsl.launcher import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    old_env = dict(os.environ)
    old_stdin = sys.stdin
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        if env:
            os.environ.update({k: str(v) for k, v in env.items()})
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, (int, type(None))):
                    err.write(str(exc.code))
    finally:
        sys.stdin = old_stdin
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return CliResult(code, out.getvalue(), err.getvalue())


def _run_subprocess(args, cwd=None, env=None, stdin: str | None = None,
                    timeout: float = 120) -> CliResult:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
    full_env.pop("FORCE_COLOR", None)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    proc = subprocess.run([sys.executable, "-m", "kailash_dsl", *map(str, args)],
                          cwd=cwd, env=full_env, input=stdin, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def kflow():
    """Run the CLI in-process: ``kflow("check", path, "--format", "json")``."""

    def run(*args, cwd=None, env=None, stdin=None) -> CliResult:
        return _run_in_process(args, cwd=cwd, env=env, stdin=stdin)

    run.subprocess = lambda *a, **kw: _run_subprocess(a, **kw)  # type: ignore[attr-defined]
    return run


@pytest.fixture
def kflow_proc():
    """Run the CLI as a subprocess (``python -m kailash_dsl``)."""

    def run(*args, cwd=None, env=None, stdin=None, timeout=120) -> CliResult:
        return _run_subprocess(args, cwd=cwd, env=env, stdin=stdin, timeout=timeout)

    return run
