"""What ``kflow serve`` and ``kflow mcp`` do; ``kailash_dsl/cli.py`` only parses options.

Problems that stop the server from starting (program errors, a bad keys file, a port in
use, a missing extra) are one clear line on stderr (diagnostics rendered) and exit 2.
"""

from __future__ import annotations

import sys

from . import StartupError

_EXTRA_HINT = "install the server extra: pip install 'kailash-dsl[serve]'"


def _err(msg: str) -> int:
    sys.stderr.write(f"error: {msg}\n")
    return 2


def _duration(text: str, option: str) -> float:
    from ..durations import parse_duration

    try:
        return parse_duration(text) / 1000.0
    except ValueError:
        raise StartupError(f"{option} takes a duration like 1s, 500ms or 2m, not `{text}`")


def _startup_failed(exc: StartupError) -> int:
    if exc.diagnostics:
        from ..render import render, want_color

        files = len({d.span.file for d in exc.diagnostics}) or 1
        sys.stderr.write(render("human", exc.diagnostics, files,
                                color=want_color(sys.stderr)))
    return _err(exc.message)


def _need(*modules: str) -> str | None:
    import importlib.util

    for m in modules:
        if importlib.util.find_spec(m) is None:
            return m
    return None


def cmd_serve(files: list[str], host: str, port: int, db: str | None,
              api_keys: str | None, rate_limit: str | None, block_for: str,
              new_key: str | None, roles: list[str]) -> int:
    try:
        if new_key is not None:
            from .auth import add_key

            if not api_keys:
                return _err("--new-key needs --api-keys FILE (where its hash is stored)")
            key = add_key(api_keys, new_key, roles, rate_limit)
            sys.stdout.write(key + "\n")
            sys.stderr.write(f"added key `{new_key}` (roles: {', '.join(roles) or 'none'}) "
                             f"to {api_keys}; the key is shown only now\n")
            return 0
        if not files:
            return _err("name the .kflow files to serve (usage: kflow serve FILE... "
                        "[--host H] [--port P])")
        if not 0 <= port <= 65535:
            return _err(f"--port must be 0..65535, not {port}")
        missing = _need("starlette", "uvicorn", "sse_starlette", "mcp")
        if missing:
            return _err(f"`kflow serve` needs the `{missing}` package; {_EXTRA_HINT}")
        wait = _duration(block_for, "--block-for")
        from .app import serve

        return serve(files, host=host, port=port, db=db, api_keys=api_keys,
                     rate_limit=rate_limit, block_for=wait)
    except StartupError as exc:
        return _startup_failed(exc)
    except KeyboardInterrupt:
        return 130


def cmd_mcp(files: list[str], db: str | None, block_for: str) -> int:
    try:
        missing = _need("mcp", "anyio")
        if missing:
            return _err(f"`kflow mcp` needs the `{missing}` package; {_EXTRA_HINT}")
        wait = _duration(block_for, "--block-for")
        from .mcp_server import run_stdio

        return run_stdio(files, db=db, block_for=wait)
    except StartupError as exc:
        return _startup_failed(exc)
    except KeyboardInterrupt:
        return 130
