"""``std.json``: Parse, Dump, Query (JMESPath).

Named ``json_`` so that it can never shadow the standard library's ``json`` module.
"""

from __future__ import annotations

import json as _json
from typing import Any

from .errors import NodeError


def parse(text: str) -> Any:
    """Parse JSON text."""
    try:
        return _json.loads(text)
    except (TypeError, ValueError) as exc:
        raise NodeError("JsonError", f"invalid JSON: {exc}") from exc


def dump(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    """Serialise ``value`` as JSON text (compact when ``indent`` is None)."""
    try:
        if indent is None:
            return _json.dumps(value, sort_keys=sort_keys, ensure_ascii=False,
                               separators=(",", ":"))
        return _json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise NodeError("JsonError", f"value is not JSON: {exc}") from exc


def query(value: Any, expression: str) -> Any:
    """Evaluate a JMESPath expression against ``value``."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(expression, value)
    except JMESPathError as exc:
        raise NodeError("JsonError", f"bad JMESPath expression {expression!r}: {exc}") from exc


__all__ = ["parse", "dump", "query"]
