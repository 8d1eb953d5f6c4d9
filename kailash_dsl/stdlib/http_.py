"""``std.http``: Get, Post, Request (httpx, async).

Named ``http_`` so that no folder on ``sys.path`` can make it shadow the standard
library's ``http`` package.
"""

from __future__ import annotations

import json as _json
from typing import Any

import httpx

from ._support import duration_seconds, log
from .errors import NodeError

_PREVIEW = 300


def _headers(headers: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(headers or {}).items()}


def _query(query: Any) -> dict[str, str]:
    out = {}
    for k, v in dict(query or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[str(k)] = str(v)
    return out


def _response(resp: httpx.Response) -> dict[str, Any]:
    text = resp.text
    try:
        parsed = _json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    headers: dict[str, str] = {}
    for k, v in resp.headers.multi_items():
        k = k.lower()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    return {"status": resp.status_code, "headers": headers, "body": text, "json": parsed}


async def _send(
    method: str,
    url: str,
    headers: Any = None,
    query: Any = None,
    body: Any = None,
    timeout: Any = 30_000,
    ok_statuses: Any = (),
    ctx: Any = None,
    idempotency_header: bool = False,
) -> dict[str, Any]:
    method = str(method).upper()
    hdrs = _headers(headers)
    key = getattr(ctx, "idempotency_key", None) if ctx is not None else None
    if idempotency_header and key and not any(h.lower() == "idempotency-key" for h in hdrs):
        hdrs["Idempotency-Key"] = str(key)
    kwargs: dict[str, Any] = {"headers": hdrs, "params": _query(query)}
    if body is not None:
        kwargs["json"] = body
    seconds = duration_seconds(timeout)
    try:
        async with httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client:
            resp = await client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise NodeError("Timeout", f"{method} {url} timed out after {seconds:g}s") from exc
    except httpx.InvalidURL as exc:
        raise NodeError("HttpError", f"{method} {url}: invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise NodeError("HttpError", f"{method} {url} failed: {reason}") from exc
    result = _response(resp)
    allowed = {int(s) for s in (ok_statuses or ())}
    if not (200 <= resp.status_code < 300) and resp.status_code not in allowed:
        preview = result["body"][:_PREVIEW]
        more = "…" if len(result["body"]) > _PREVIEW else ""
        raise NodeError(
            "HttpError",
            f"{method} {url} returned {resp.status_code} {resp.reason_phrase}"
            + (f": {preview}{more}" if preview else ""),
        )
    log(ctx, f"{method} {resp.url} -> {resp.status_code}")
    return result


async def get(url: str, headers: Any = None, query: Any = None, timeout: Any = 30_000,
              ok_statuses: Any = (), *, ctx: Any = None) -> dict[str, Any]:
    """``GET url``."""
    return await _send("GET", url, headers, query, None, timeout, ok_statuses, ctx)


async def post(url: str, headers: Any = None, query: Any = None, body: Any = None,
               timeout: Any = 30_000, ok_statuses: Any = (), *, ctx: Any = None) -> dict[str, Any]:
    """``POST url`` with a JSON body; sends the step's ``Idempotency-Key``."""
    return await _send("POST", url, headers, query, body, timeout, ok_statuses, ctx,
                       idempotency_header=True)


async def request(method: str, url: str, headers: Any = None, query: Any = None,
                  body: Any = None, timeout: Any = 30_000, ok_statuses: Any = (), *,
                  ctx: Any = None) -> dict[str, Any]:
    """Any method with a JSON body; sends the step's ``Idempotency-Key``."""
    return await _send(method, url, headers, query, body, timeout, ok_statuses, ctx,
                       idempotency_header=True)


__all__ = ["get", "post", "request"]
