"""The Starlette application behind ``kflow serve``.

Routes (the REST part is exactly the document at ``/openapi.json``):

- one route per workflow: ``POST /workflows/<Name>`` or its ``@api(path:, method:)``;
  200 when the run finished, 202 (with ``Location``) when it waits, 422 naming the field;
- ``GET /runs/{run_id}``, ``POST /runs/{run_id}/signals/{name}`` (409 once finished),
  ``GET /runs/{run_id}/events`` (server-sent events), ``/runs/{run_id}/ws`` (WebSocket);
- ``/mcp`` (MCP, streamable HTTP, stateless, JSON responses), ``/openapi.json``, ``/docs``,
  ``/healthz`` and ``/metrics``.

Every error is an RFC 9457 ``application/problem+json`` document. A pure ASGI middleware
(:class:`Gate`) authenticates, spends the caller's rate-limit token and counts requests by
route template, for REST and MCP alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import json
import logging
import re
import sys
import time
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..runtime import api
from . import StartupError
from .auth import Auth, Principal, key_from_headers
from .engine import Engine, RunConflict, RunFinished, RunNotFound, run_view
from .metrics import Metrics
from .ratelimit import Limiter, retry_after_header
from .registry import Entry, InputError, Registry, UnknownSignal, check_input

log = logging.getLogger("kflow.serve")

PROBLEM = "application/problem+json"
#: paths anyone may read, even with --api-keys
OPEN_PATHS = ("/healthz", "/openapi.json", "/docs")
MAX_BODY = 4 * 1024 * 1024


def _dumps(v: Any) -> bytes:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(_dumps(data), status, headers, media_type="application/json")


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content",
           429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


def problem_body(status: int, detail: str, instance: str | None = None, **extra) -> dict:
    body: dict[str, Any] = {"type": "about:blank", "title": _TITLES.get(status, "Error"),
                            "status": status, "detail": detail}
    if instance:
        # the decoded request path, percent-encoded again: a URI reference
        body["instance"] = quote(instance, safe="/:@!$&'()*+,;=-._~")
    body.update(extra)
    return body


def problem(status: int, detail: str, instance: str | None = None,
            headers: dict | None = None, **extra) -> Response:
    return Response(_dumps(problem_body(status, detail, instance, **extra)), status, headers,
                    media_type=PROBLEM)


def validation_problem(exc: InputError, instance: str | None = None) -> Response:
    return problem(422, exc.message, instance, errors=exc.errors)


class ServerState:
    """Everything the routes share: one registration, one engine, one auth model."""

    def __init__(self, registry: Registry, engine: Engine, auth: Auth, limiter: Limiter,
                 metrics: Metrics, *, public_url: str = "") -> None:
        self.registry = registry
        self.engine = engine
        self.auth = auth
        self.limiter = limiter
        self.metrics = metrics
        self.public_url = public_url
        self.draining = False
        self.openapi = registry.served_openapi(auth=auth.enabled,
                                               rate_limited=limiter.default is not None or any(
                                                   e.rate for e in auth.entries))
        self.openapi_bytes = _dumps(self.openapi)
        self.mcp = None  # the MCP HTTP app, set by build_app


# --------------------------------------------------------------------------- middleware


class Gate:
    """Authenticate, rate-limit and count every request (REST, events, WebSocket, MCP)."""

    def __init__(self, app, state: ServerState, fast: dict | None = None) -> None:
        self.app = app
        self.state = state
        #: (method, path) -> endpoint, for workflow routes without path parameters: the
        #: hot path skips Starlette's router and middleware stack
        self.fast = fast or {}

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        st = self.state
        t0 = time.perf_counter()
        status_box = [101 if kind == "websocket" else 500]

        async def send_wrapped(message) -> None:
            t = message["type"]
            if t == "http.response.start" or t == "websocket.http.response.start":
                status_box[0] = message["status"]
            elif t == "websocket.close" and status_box[0] == 101:
                status_box[0] = 403 if message.get("code", 1000) == 1008 else 101
            await send(message)

        path = scope["path"]
        template = None
        try:
            if path in OPEN_PATHS:
                await self.app(scope, receive, send_wrapped)
                return
            key = None
            if st.auth.enabled:
                query = None
                if kind == "websocket":
                    from starlette.datastructures import QueryParams
                    query = QueryParams(scope.get("query_string", b""))
                key = key_from_headers(_Headers(scope), query)
            client = (scope.get("client") or ("", 0))[0]
            principal = st.auth.principal(key, client)
            if principal is None:
                await self._deny(scope, receive, send_wrapped, 401,
                                 "this server needs an API key: send `Authorization: Bearer "
                                 "<key>` or `X-API-Key: <key>`",
                                 {"WWW-Authenticate": 'Bearer realm="kflow"'})
                return
            wait = st.limiter.take(principal.bucket, principal.rate)
            if wait > 0:
                channel = "mcp" if path.startswith("/mcp") else "rest"
                st.metrics.rate_limited.inc(channel)
                ra = retry_after_header(wait)
                await self._deny(scope, receive, send_wrapped, 429,
                                 f"rate limit of `{principal.name}` reached; retry in {ra}s",
                                 {"Retry-After": ra})
                return
            scope["kflow.principal"] = principal
            endpoint = self.fast.get((scope.get("method"), path)) if kind == "http" else None
            if endpoint is None:
                await self.app(scope, receive, send_wrapped)
                return
            # a workflow route: the endpoint says what it sent, no wrapped send
            template = endpoint.e.path
            try:
                status_box[0] = await endpoint.handle(scope, receive, send) or 500
            except Exception as exc:
                log.exception("internal error on %s %s", scope.get("method"), path)
                with contextlib.suppress(Exception):  # unless the answer had started
                    await problem(500, f"internal error: {type(exc).__name__}; the server "
                                       "log has the traceback", path)(scope, receive,
                                                                      send_wrapped)
        finally:
            if template is None:
                route = scope.get("route")
                template = getattr(route, "path", None) or (
                    path if path in OPEN_PATHS and status_box[0] != 404 else "unmatched")
            method = scope.get("method", "WS") if kind == "http" else "WS"
            st.metrics.requests.inc(template, method, str(status_box[0]))
            st.metrics.request_latency.observe(time.perf_counter() - t0, template)

    async def _deny(self, scope, receive, send, status: int, detail: str,
                    headers: dict) -> None:
        if scope["type"] == "websocket":
            ext = scope.get("extensions") or {}
            if "websocket.http.response" in ext:
                body = _dumps(problem_body(status, detail, scope["path"]))
                hdrs = [(b"content-type", PROBLEM.encode())] + \
                    [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
                await send({"type": "websocket.http.response.start", "status": status,
                            "headers": hdrs})
                await send({"type": "websocket.http.response.body", "body": body})
            else:  # pragma: no cover - servers without the denial extension
                await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        resp = problem(status, detail, scope["path"], headers)
        await resp(scope, receive, send)


class _Headers:
    """Lower-cased header lookup on an ASGI scope, without building a Request."""

    __slots__ = ("_scope",)

    def __init__(self, scope) -> None:
        self._scope = scope

    def get(self, name: str, default=None):
        key = name.lower().encode("latin-1")
        for k, v in self._scope.get("headers") or ():
            if k == key:
                return v.decode("latin-1")
        return default


def _principal(scope) -> Principal:
    p = scope.get("kflow.principal")
    return p if p is not None else Principal("anonymous", all_access=True)


def _may_see(st: ServerState, principal: Principal, workflow: str) -> bool:
    roles = st.registry.roles_for_run(workflow)
    if roles is None:  # a run of a workflow this server does not serve
        return principal.all_access or "*" in principal.roles or not st.auth.enabled
    return principal.may(roles)


# ------------------------------------------------------------------------------ routes


class _TooLarge(Exception):
    pass


async def read_body(receive, limit: int = MAX_BODY) -> bytes | None:
    """The request body (None when the client went away); :class:`_TooLarge` past
    ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _TooLarge()
            chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


_JSON_HEADERS = (b"content-type", b"application/json")
#: a string JSON writes between quotes as it is (run ids, nearly always)
_PLAIN = re.compile(r'[^"\\\x00-\x1f\x7f-\U0010ffff]*\Z')


class WorkflowEndpoint:
    """``POST /workflows/<Name>`` (or its ``@api`` route) as a plain ASGI app: the hot path
    of the server, so no Request/Response objects."""

    def __init__(self, st: ServerState, e: Entry) -> None:
        self.st = st
        self.e = e
        self.__name__ = f"run_{e.name}"

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> int:
        """Answer the request; the status sent (0 when the client went away first)."""
        st, e = self.st, self.e
        instance = scope["path"]
        principal = _principal(scope)
        if not principal.may(e.roles):
            resp = problem(403, f"`{e.name}` needs one of the roles {', '.join(e.roles)}; "
                                f"the key `{principal.name}` has "
                                f"{', '.join(sorted(principal.roles)) or 'none'}", instance)
            return await _answer(resp, scope, receive, send)
        body = None
        text = None
        query = None
        if e.in_query:
            from starlette.datastructures import QueryParams
            query = QueryParams(scope.get("query_string", b""))
        else:
            try:
                raw = await read_body(receive)
            except _TooLarge:
                return await _answer(problem(413, f"the body is larger than {MAX_BODY} "
                                             "bytes", instance), scope, receive, send)
            if raw is None:
                return 0
            if raw.strip():
                try:
                    text, body = _loads(raw)
                except ValueError as exc:
                    msg = f"the body is not valid JSON: {exc}"
                    return await _answer(problem(422, msg, instance, errors=[
                        {"field": "", "message": msg}]), scope, receive, send)
        try:
            data = st.registry.request_input(e, scope.get("path_params") or {}, query, body)
            values = check_input(e.rwf, data)
        except InputError as exc:
            return await _answer(validation_problem(exc, instance), scope, receive, send)
        run_id = None
        for k, v in scope["headers"]:
            if k == b"kflow-run-id":
                run_id = v.decode("latin-1") or None
        try:
            # the body is the whole input when no path parameter adds to it
            result, output_json = await st.engine.start(
                e, values, data, run_id=run_id, channel="rest", encoded=True,
                input_text=text if data is body and text is not None else None)
        except RunConflict as exc:
            return await _answer(problem(409, str(exc), instance), scope, receive, send)
        except api.CannotStart as exc:
            return await _answer(problem(503, exc.message, instance), scope, receive, send)
        if result is None:  # pragma: no cover - only when resuming was refused
            return await _answer(problem(503, "the run could not be driven here", instance),
                                 scope, receive, send)
        headers = [_JSON_HEADERS]
        status = 200
        if output_json is not None and result["status"] == "completed":
            # the output as the journal recorded it, not encoded a second time
            rid = result["run_id"]
            rid_json = b'"%s"' % rid.encode() if _PLAIN.match(rid) else _dumps(rid)
            payload = b'{"run_id":%s,"status":"completed","output":%s,"error":null}' % (
                rid_json, output_json.encode())
        else:
            out = {"run_id": result["run_id"], "status": result["status"],
                   "output": result.get("output"), "error": result.get("error")}
            if result["status"] in ("waiting", "running"):
                status = 202
                for k in ("waiting_for", "wake_at"):
                    if result.get(k) is not None:
                        out[k] = result[k]
                headers.append((b"location", f"/runs/{result['run_id']}".encode()))
            payload = _dumps(out)
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        return status


async def _answer(resp: Response, scope, receive, send) -> int:
    await resp(scope, receive, send)
    return resp.status_code


def _loads(raw: bytes) -> tuple[str | None, Any]:
    """A JSON body as (its text when UTF-8, its value)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, json.loads(raw)  # UTF-16/32 with a BOM: json detects it, or says why
    return text, json.loads(text)


async def _find_run(st: ServerState, request: Request):
    rid = request.path_params["run_id"]
    rec = await st.engine.get(rid)
    if rec is None:
        return None, problem(404, f"no run `{rid}`", request.scope["path"])
    if not _may_see(st, _principal(request.scope), rec.workflow):
        return None, problem(403, f"the key `{_principal(request.scope).name}` may not see "
                                  f"runs of `{rec.workflow}`", request.scope["path"])
    return rec, None


def _run_routes(st: ServerState) -> list:
    engine = st.engine

    async def get_run(request: Request) -> Response:
        rec, err = await _find_run(st, request)
        if err is not None:
            return err
        return json_response(run_view(rec))

    async def send_signal(request: Request) -> Response:
        instance = request.scope["path"]
        rec, err = await _find_run(st, request)
        if err is not None:
            return err
        name = request.path_params["name"]
        try:
            raw = await read_body(request.receive)
        except _TooLarge:
            return problem(413, f"the body is larger than {MAX_BODY} bytes", instance)
        if raw is None:
            return Response(status_code=400)
        payload = None
        if raw.strip():
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                msg = f"the body is not valid JSON: {exc}"
                return problem(422, msg, instance, errors=[{"field": "", "message": msg}])
        try:
            rec = await engine.signal(rec.run_id, name, payload)
        except RunNotFound:
            return problem(404, f"no run `{request.path_params['run_id']}`", instance)
        except RunFinished as exc:
            return problem(409, str(exc), instance)
        except UnknownSignal as exc:
            return problem(404, exc.message, instance, errors=exc.errors)
        except InputError as exc:
            return validation_problem(exc, instance)
        view = run_view(rec)
        view["signal"] = name
        return json_response(view, 202)

    async def events(request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse, ServerSentEvent

        rec, err = await _find_run(st, request)
        if err is not None:
            return err
        after = 0
        last = request.headers.get("last-event-id") or request.query_params.get("after")
        if last and last.isdigit():
            after = int(last)

        async def stream():
            async for kind, item in engine.follow(rec.run_id, after):
                if kind == "event":
                    yield ServerSentEvent(data=json.dumps(item, ensure_ascii=False),
                                          event=item["type"], id=str(item["seq"]))
                else:
                    yield ServerSentEvent(data=json.dumps(run_view(item), ensure_ascii=False),
                                          event="end")
                if st.draining:
                    return

        return EventSourceResponse(stream(), ping=15)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        rid = websocket.path_params["run_id"]
        rec = await engine.get(rid)
        principal = _principal(websocket.scope)
        if rec is None:
            await websocket.send_json({"type": "error", "status": 404,
                                       "detail": f"no run `{rid}`"})
            await websocket.close(4404)
            return
        if not _may_see(st, principal, rec.workflow):
            await websocket.send_json({"type": "error", "status": 403,
                                       "detail": f"the key `{principal.name}` may not see "
                                                 f"runs of `{rec.workflow}`"})
            await websocket.close(4403)
            return
        after = int(websocket.query_params.get("after", "0") or 0) \
            if (websocket.query_params.get("after") or "").isdigit() else 0
        lock = asyncio.Lock()

        async def send(msg: dict) -> None:
            async with lock:
                await websocket.send_text(json.dumps(msg, ensure_ascii=False))

        async def pump() -> None:
            async for kind, item in engine.follow(rid, after):
                if kind == "event":
                    await send({"type": "event", "event": item})
                else:
                    await send({"type": "end", "run": run_view(item)})
                    return
                if st.draining:
                    return

        async def listen() -> None:
            while True:
                text = await websocket.receive_text()
                try:
                    msg = json.loads(text)
                except ValueError:
                    await send({"type": "error", "status": 422,
                                "detail": "messages are JSON objects like {\"type\": "
                                          "\"signal\", \"name\": \"approval\", \"data\": {...}}"})
                    continue
                if not isinstance(msg, dict) or msg.get("type") != "signal" or \
                        not isinstance(msg.get("name"), str):
                    await send({"type": "error", "status": 422,
                                "detail": "the only message a client sends is {\"type\": "
                                          "\"signal\", \"name\": NAME, \"data\": PAYLOAD}"})
                    continue
                try:
                    await engine.signal(rid, msg["name"], msg.get("data"))
                    await send({"type": "signal.accepted", "name": msg["name"]})
                except RunFinished as exc:
                    await send({"type": "error", "status": 409, "detail": str(exc)})
                except InputError as exc:
                    await send({"type": "error", "status": 422, "detail": exc.message,
                                "errors": exc.errors})

        pump_task = asyncio.ensure_future(pump())
        listen_task = asyncio.ensure_future(listen())
        try:
            done, _ = await asyncio.wait({pump_task, listen_task},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump_task, listen_task):
                t.cancel()
            await asyncio.gather(pump_task, listen_task, return_exceptions=True)
        if pump_task in done and not pump_task.cancelled() and pump_task.exception() is None:
            with contextlib.suppress(Exception):
                await websocket.close(1000)
        elif listen_task in done and isinstance(listen_task.exception(), WebSocketDisconnect):
            return
        else:
            with contextlib.suppress(Exception):
                await websocket.close(1011)

    return [
        Route("/runs/{run_id}", get_run, methods=["GET"]),
        Route("/runs/{run_id}/signals/{name}", send_signal, methods=["POST"]),
        Route("/runs/{run_id}/events", events, methods=["GET"]),
        WebSocketRoute("/runs/{run_id}/ws", ws),
    ]


def _service_routes(st: ServerState) -> list:
    async def openapi(request: Request) -> Response:
        return Response(st.openapi_bytes, media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(docs_page(st.openapi, st.auth.enabled), media_type="text/html")

    async def healthz(request: Request) -> Response:
        body = {"status": "draining" if st.draining else "ok",
                "workflows": [e.qualname for e in st.registry.entries],
                "active_runs": len(st.engine.active)}
        return json_response(body, 503 if st.draining else 200)

    async def metrics(request: Request) -> Response:
        counts = await st.engine.run_counts()
        return Response(st.metrics.render(counts).encode(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


# -------------------------------------------------------------------------------- app


def build_app(st: ServerState, *, host: str = "127.0.0.1", on_ready=None) -> Starlette:
    from .mcp_server import build_mcp_server, http_app

    routes: list = []
    for e in st.registry.entries:
        routes.append(Route(e.path, WorkflowEndpoint(st, e), methods=[e.method]))
    routes.extend(_run_routes(st))
    routes.extend(_service_routes(st))
    mcp_server = build_mcp_server(st.registry, st.engine, st.metrics)
    manager, mcp_asgi = http_app(mcp_server, host)
    st.mcp = mcp_asgi
    routes.append(Route("/mcp", mcp_asgi, methods=["GET", "POST", "DELETE"]))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await st.engine.open()
        # The compiled programs, checked ASTs and schemas live as long as the server:
        # keep the garbage collector from walking them on every collection.
        gc.collect()
        gc.freeze()
        try:
            async with manager.run():
                if on_ready is not None:
                    on_ready()
                yield
        finally:
            st.draining = True
            await st.engine.close()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            routes_txt = ", ".join(f"{e.method} {e.path}" for e in st.registry.entries)
            detail = (f"no route {request.method} {request.scope['path']} (workflows: "
                      f"{routes_txt or 'none'})")
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.scope['path']} (allowed: " \
                     f"{headers.get('Allow', '?')})"
        return problem(exc.status_code, detail, request.scope["path"], headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.scope["path"])
        return problem(500, f"internal error: {type(exc).__name__}; the server log has the "
                            "traceback", request.scope["path"])

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    fast = {(e.method, e.path): WorkflowEndpoint(st, e) for e in st.registry.entries
            if not e.path_params}
    return Gate(app, st, fast)  # type: ignore[return-value]


def build_state(files: list[str], *, db, api_keys: str | None = None,
                rate_limit: str | None = None, block_for: float = 1.0) -> ServerState:
    from .ratelimit import parse_rate

    registry = Registry.load(files)
    auth = Auth.from_file(api_keys)
    default_rate = None
    if rate_limit and rate_limit.lower() not in ("off", "none", "0"):
        try:
            default_rate = parse_rate(rate_limit)
        except ValueError as exc:
            raise StartupError(f"--rate-limit: {exc}") from None
    metrics = Metrics()
    engine = Engine(registry, db, block_for=block_for, metrics=metrics)
    return ServerState(registry, engine, auth, Limiter(default_rate), metrics)


# ------------------------------------------------------------------------------ serve


def _listen(host: str, port: int):
    import socket

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover
        raise StartupError(f"cannot resolve --host {host}")
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve(files: list[str], *, host: str = "127.0.0.1", port: int = 8000, db=None,
          api_keys: str | None = None, rate_limit: str | None = None,
          block_for: float = 1.0, grace: float = 10.0) -> int:
    """``kflow serve``: run until SIGINT/SIGTERM; 0 after a graceful shutdown."""
    import uvicorn

    from ..runtime.journal import default_db_path

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    st = build_state(files, db=db or default_db_path(), api_keys=api_keys,
                     rate_limit=rate_limit, block_for=block_for)
    sock = _listen(host, port)
    bound = sock.getsockname()
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    url = f"http://{shown_host}:{bound[1]}"
    st.public_url = url

    def ready() -> None:
        n = len(st.registry.entries)
        sys.stderr.write(
            f"kflow serve: {n} workflow{'s' if n != 1 else ''} on {url} "
            f"(docs {url}/docs, MCP {url}/mcp, journal {st.engine.db})\n")
        if not st.auth.enabled:
            loop_only = bound[0] in ("127.0.0.1", "::1") or bound[0].startswith("127.")
            sys.stderr.write("kflow serve: no --api-keys: every caller may run every "
                             "workflow" + ("" if loop_only else " (and this host is not "
                                           "loopback!)") + "\n")
        sys.stderr.flush()

    app = build_app(st, host=host, on_ready=ready)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            st.draining = True
            st.engine.draining = True
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn's own re-raises the signal once it shut down (the process then dies
            # of it); a graceful stop of `kflow serve` exits 0 instead
            import signal as _signal
            import threading

            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (_signal.SIGINT, _signal.SIGTERM)
            old = {s: _signal.signal(s, self.handle_exit) for s in sigs}
            try:
                yield
            finally:
                for s, h in old.items():
                    _signal.signal(s, h)

    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=grace, ws="websockets-sansio",
                            server_header=False)
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.started:
        sys.stderr.write("kflow serve: stopped\n")
        return 0
    return 1


# -------------------------------------------------------------------------------- docs


def docs_page(doc: dict, auth: bool) -> str:
    """A self-contained page: every operation, its schemas, and a form to try it."""
    e = html.escape
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{e(doc['info']['title'])} — kflow serve</title>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em;color:#1d2330}h1{font-size:1.6em}code,pre,textarea{font:13px/1.4 "
        "ui-monospace,monospace}pre{background:#f4f5f8;padding:.7em;overflow:auto;"
        "border-radius:6px}.op{border:1px solid #d9dce3;border-radius:8px;margin:1.2em 0;"
        "padding:.8em 1em}.m{display:inline-block;min-width:4.5em;font-weight:700;"
        "color:#fff;border-radius:4px;text-align:center;margin-right:.6em;padding:.1em .4em}"
        ".POST{background:#1f7a4d}.GET{background:#2357b5}.PUT{background:#9a6a00}"
        ".DELETE{background:#b3261e}.PATCH{background:#6b3fa0}textarea{width:100%;"
        "height:7em}button{margin:.4em 0;padding:.3em 1em}details{margin:.4em 0}</style>",
        "</head><body>",
        f"<h1>{e(doc['info']['title'])}</h1>",
        f"<p>{e(doc['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>. MCP (streamable "
        "HTTP): <code>/mcp</code>. Health: <a href='healthz'>healthz</a>, metrics: "
        "<code>/metrics</code>.</p>",
    ]
    if auth:
        out.append("<p>API key: <input id=key type=password size=50 placeholder='kf_...'> "
                   "(sent as <code>Authorization: Bearer</code>)</p>")
    n = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            n += 1
            m = method.upper()
            out.append(f"<div class=op><div><span class='m {m}'>{m}</span>"
                       f"<code>{e(path)}</code> — {e(op.get('summary', ''))}</div>")
            out.append(f"<p>{e(op.get('description', ''))}</p>")
            if op.get("x-kflow-roles"):
                out.append(f"<p>Roles: {e(', '.join(op['x-kflow-roles']))}</p>")
            params = op.get("parameters") or []
            if params:
                out.append("<p>Parameters: " + ", ".join(
                    f"<code>{e(p['name'])}</code> ({e(p['in'])})" for p in params) + "</p>")
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if body:
                out.append("<details><summary>Request body schema</summary><pre>"
                           f"{e(json.dumps(body['schema'], indent=2))}</pre></details>")
            codes = ", ".join(f"<code>{e(c)}</code> {e(r.get('description', ''))}"
                              for c, r in op.get("responses", {}).items())
            out.append(f"<details><summary>Responses</summary><p>{codes}</p></details>")
            if method in ("post", "put", "patch", "get"):
                out.append(f"<details><summary>Try it</summary>"
                           f"<input id=p{n} value='{e(path)}' size=60>"
                           + (f"<textarea id=b{n}>{{}}</textarea>" if method != "get" else "")
                           + f"<button onclick=\"tryIt({n},'{m}')\">Send</button>"
                           f"<pre id=r{n}></pre></details>")
            out.append("</div>")
    out.append("<h2>Schemas</h2>")
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out.append(f"<details id='schema-{e(name)}'><summary><code>{e(name)}</code></summary>"
                   f"<pre>{e(json.dumps(schema, indent=2))}</pre></details>")
    out.append("""<script>
async function tryIt(n, method) {
  const path = document.getElementById('p' + n).value;
  const b = document.getElementById('b' + n);
  const headers = {'Content-Type': 'application/json'};
  const k = document.getElementById('key');
  if (k && k.value) headers['Authorization'] = 'Bearer ' + k.value;
  const base = location.pathname.replace(/\\/docs$/, '');
  const r = await fetch(base + path, {method, headers, body: b ? b.value : undefined});
  const text = await r.text();
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
  document.getElementById('r' + n).textContent = r.status + ' ' + r.statusText + '\\n' + shown;
}
</script></body></html>""")
    return "\n".join(out)
