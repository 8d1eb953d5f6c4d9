"""``kflow serve`` and ``kflow mcp``: one registration, every channel.

Register ``.kflow`` files once and every workflow they declare is a typed REST endpoint
(exactly the OpenAPI document ``kflow emit openapi`` writes), an MCP tool (exactly what
``kflow emit mcp`` lists) over streamable HTTP and over stdio, and a CLI command — all
sharing one durable journal, one API-key auth model and one per-key rate limit.

Modules:

- :mod:`.registry` — the compiled programs, their routes, tools and input checking;
- :mod:`.engine` — runs executed by the durable VM inside the server (group-committed
  journal shared by every run, a scheduler that resumes due and orphaned runs);
- :mod:`.auth`, :mod:`.ratelimit`, :mod:`.metrics` — API keys and roles, token buckets,
  Prometheus text;
- :mod:`.app` — the Starlette application and ``kflow serve``;
- :mod:`.mcp_server` — the MCP low-level server, over HTTP (``/mcp``) and stdio.

Nothing here is imported by ``kflow check``: the CLI imports it inside the command bodies.
"""

from __future__ import annotations


class StartupError(Exception):
    """The server cannot start: one clear sentence for the command line (exit 2)."""

    def __init__(self, message: str, diagnostics: list | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = diagnostics or []
