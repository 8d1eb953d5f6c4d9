"""``std.text``: Template (sandboxed Jinja2) and Regex."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import NodeError

_ENV_STRICT = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                   keep_trailing_newline=True)
_ENV_LAX = SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False,
                                keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compile_template(source: str, strict: bool) -> jinja2.Template:
    return (_ENV_STRICT if strict else _ENV_LAX).from_string(source)


def template(template: str, vars: Any = None, strict: bool = True) -> str:
    """Render a Jinja2 template in a sandbox."""
    if vars is None:
        vars = {}
    if not isinstance(vars, dict):
        raise NodeError("TemplateError", "vars must be a record or map")
    try:
        return _compile_template(template, bool(strict)).render(**vars)
    except jinja2.TemplateSyntaxError as exc:
        raise NodeError("TemplateError", f"template syntax error on line {exc.lineno}: {exc.message}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise NodeError("TemplateError", f"template blocked by the sandbox: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise NodeError("TemplateError", str(exc)) from exc


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
OPS = ("search", "match", "fullmatch", "findall", "sub")


@lru_cache(maxsize=256)
def _compile_regex(pattern: str, flags: str) -> re.Pattern[str]:
    bits = 0
    for letter in flags:
        if letter not in _FLAGS:
            raise NodeError("RegexError", f"unknown regex flag {letter!r}: use any of i, m, s, x")
        bits |= _FLAGS[letter]
    try:
        return re.compile(pattern, bits)
    except re.error as exc:
        raise NodeError("RegexError", f"bad regular expression {pattern!r}: {exc}") from exc


def regex(pattern: str, text: str, op: str = "search", replacement: str = "",
          flags: str = "") -> dict[str, Any]:
    """Apply a regular expression; see ``std.text.Regex``."""
    rx = _compile_regex(pattern, flags or "")
    result: dict[str, Any] = {"matched": False, "match": None, "groups": [], "named": {},
                              "matches": [], "text": text, "count": 0}
    if op in ("search", "match", "fullmatch"):
        m = getattr(rx, op)(text)
        if m:
            result.update(matched=True, match=m.group(0), groups=list(m.groups()),
                          named=m.groupdict(), count=1)
    elif op == "findall":
        found = [m.group(0) for m in rx.finditer(text)]
        result.update(matched=bool(found), matches=found, count=len(found))
    elif op == "sub":
        try:
            new, n = rx.subn(replacement, text)
        except (re.error, IndexError) as exc:
            raise NodeError("RegexError", f"bad replacement {replacement!r}: {exc}") from exc
        result.update(matched=n > 0, text=new, count=n)
    else:
        raise NodeError("RegexError", f"unknown op {op!r}: use one of {', '.join(OPS)}")
    return result


__all__ = ["template", "regex"]
