"""Rendering diagnostics for people and machines: human, json, github, sarif.

Kept out of the compiler so `kailash_dsl.check` never imports Rich.
"""

from __future__ import annotations

import json

from .diagnostics import Diagnostic, to_json_dict


def render_json(diags: list[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diags if d.is_error)
    return json.dumps({
        "files": files,
        "errors": errors,
        "warnings": len(diags) - errors,
        "diagnostics": [to_json_dict(d) for d in diags],
    }, indent=2)
