"""``std.sql``: Query and Execute on SQLite (aiosqlite) or PostgreSQL (psycopg 3, async).

``db`` is a SQLite file path, resolved against the ``.kflow`` file's folder
(``ctx.base_dir``), optionally written ``sqlite:///path``; or ``:memory:``; or a
``postgresql://`` / ``postgres://`` URL. Parameters are always bound by the driver:
``?`` (or ``:name``) placeholders for SQLite, ``%s`` for PostgreSQL.

One connection is kept per connection string (per event loop for PostgreSQL, whose async
connections belong to a loop); operations on one connection are serialised with a lock so
that one step's statement and its commit or rollback never interleave with another's.
Call :func:`close_all` to close them (the runtime does at shutdown; SQLite worker threads
are daemons, so forgetting it never blocks interpreter exit).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import decimal
import json as _json
import sqlite3
import threading
import uuid as _uuid
import weakref
from typing import Any

from ._support import resolve_path
from .errors import NodeError

# ----------------------------------------------------------------------------- helpers


def is_postgres(db: str) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def _jsonable(value: Any) -> Any:
    """A database value → a JSON value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, _uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _bind_sqlite(params: Any) -> Any:
    """kflow values → SQLite parameters (records and lists are bound as JSON text)."""
    if params is None:
        return ()
    if isinstance(params, dict):  # named parameters (:name)
        return {k: _bind_value(v) for k, v in params.items()}
    return tuple(_bind_value(v) for v in params)


def _bind_value(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return _json.dumps(v, separators=(",", ":"))
    return v


def _first_keyword(sql: str) -> str:
    text = sql.lstrip()
    while text.startswith("--") or text.startswith("/*"):  # skip leading comments
        if text.startswith("--"):
            text = text.split("\n", 1)[1] if "\n" in text else ""
        else:
            text = text.split("*/", 1)[1] if "*/" in text else ""
        text = text.lstrip()
    return text.split(None, 1)[0].upper() if text else ""


# ----------------------------------------------------------------------------- SQLite

_sqlite_conns: dict[str, Any] = {}
_sqlite_create = threading.Lock()
_loop_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = (
    weakref.WeakKeyDictionary()
)


def _sqlite_path(db: str, ctx: Any) -> str:
    text = str(db)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif text.startswith("sqlite://"):
        text = text[len("sqlite://"):]
    if text == ":memory:":
        return text
    if not text:
        raise NodeError("SqlError", "empty database path")
    return str(resolve_path(text, ctx))


def _lock_for(key: str) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    locks = _loop_locks.setdefault(loop, {})
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


async def _sqlite_conn(path: str):
    import aiosqlite

    conn = _sqlite_conns.get(path)
    if conn is not None and getattr(conn, "_running", True):
        return conn
    with _sqlite_create:
        conn = aiosqlite.connect(path, timeout=30.0)
        thread = getattr(conn, "_thread", None)
        if thread is not None and not thread.is_alive():
            thread.daemon = True  # never keep the interpreter alive at exit
    await conn
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA busy_timeout = 30000")
    _sqlite_conns[path] = conn
    return conn


def _sql_error(exc: Exception, sql: str) -> NodeError:
    one_line = " ".join(str(sql).split())
    if len(one_line) > 120:
        one_line = one_line[:117] + "..."
    return NodeError("SqlError", f"{exc} (in: {one_line})")


async def _sqlite_query(path: str, sql: str, params: Any) -> dict[str, Any]:
    async with _lock_for(path):
        conn = await _sqlite_conn(path)
        try:
            cursor = await conn.execute(sql, _bind_sqlite(params))
            try:
                raw = await cursor.fetchall()
                cols = [d[0] for d in cursor.description or ()]
            finally:
                await cursor.close()
        except sqlite3.Error as exc:
            raise _sql_error(exc, sql) from exc
        finally:
            if conn.in_transaction:  # a Query never changes anything
                await conn.rollback()
    rows = [{c: _jsonable(v) for c, v in zip(cols, r)} for r in raw]
    return {"rows": rows, "count": len(rows)}


async def _sqlite_execute(path: str, sql: str, params: Any) -> dict[str, Any]:
    async with _lock_for(path):
        conn = await _sqlite_conn(path)
        try:
            try:
                cursor = await conn.execute(sql, _bind_sqlite(params))
            except sqlite3.ProgrammingError as exc:
                if "one statement at a time" not in str(exc) or params:
                    raise
                await conn.executescript(sql)  # a DDL script without parameters
                return {"rowcount": 0, "lastrowid": None}
            rowcount = max(cursor.rowcount, 0)
            lastrowid = cursor.lastrowid
            await cursor.close()
            await conn.commit()
        except sqlite3.Error as exc:
            if conn.in_transaction:
                await conn.rollback()
            raise _sql_error(exc, sql) from exc
    inserted = _first_keyword(sql) in ("INSERT", "REPLACE", "WITH") and rowcount > 0
    return {"rowcount": rowcount, "lastrowid": lastrowid if inserted and lastrowid else None}


# ----------------------------------------------------------------------------- PostgreSQL

_pg_conns: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]]" = (
    weakref.WeakKeyDictionary()
)


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NodeError(
            "SqlError",
            "PostgreSQL needs the psycopg package: pip install 'kailash-dsl[postgres]'",
        ) from exc
    return psycopg


async def _pg_conn(url: str):
    psycopg = _psycopg()
    loop = asyncio.get_running_loop()
    conns = _pg_conns.setdefault(loop, {})
    conn = conns.get(url)
    if conn is None or conn.closed or conn.broken:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise NodeError("SqlError", f"cannot connect to PostgreSQL: {exc}") from exc
        conns[url] = conn
    return conn


def _pg_params(params: Any) -> Any:
    if params is None:
        return None
    psycopg = _psycopg()
    from psycopg.types.json import Jsonb

    del psycopg
    if isinstance(params, dict):
        return {k: Jsonb(v) if isinstance(v, (dict, list)) else v for k, v in params.items()}
    return [Jsonb(v) if isinstance(v, (dict, list)) else v for v in params]


async def _pg_run(url: str, sql: str, params: Any, write: bool) -> dict[str, Any]:
    psycopg = _psycopg()
    async with _lock_for(url):
        conn = await _pg_conn(url)
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql, _pg_params(params) or None)
                cols = [d.name for d in cur.description or ()]
                raw = await cur.fetchall() if cur.description else []
                rowcount = max(cur.rowcount, 0)
        except psycopg.Error as exc:
            raise _sql_error(exc, sql) from exc
    rows = [{c: _jsonable(v) for c, v in zip(cols, r)} for r in raw]
    if not write:
        return {"rows": rows, "count": len(rows)}
    lastrowid = None
    if raw and cols and isinstance(raw[-1][0], int) and not isinstance(raw[-1][0], bool):
        lastrowid = raw[-1][0]  # INSERT ... RETURNING id
    return {"rowcount": rowcount, "lastrowid": lastrowid}


# ----------------------------------------------------------------------------- 2PC


def _gid(ctx: Any) -> str:
    """The prepared transaction's name: stable for a step across retries and resumes."""
    import hashlib

    key = str(getattr(ctx, "idempotency_key", "") or "")
    if not key:
        raise NodeError("SqlError", "TxExecute needs ctx.idempotency_key (run it with kflow)")
    gid = f"kflow:{key}"
    if len(gid) > 190:  # PostgreSQL allows 200 bytes
        gid = "kflow:" + hashlib.sha256(key.encode()).hexdigest()
    return gid


class PgParticipant:
    """``std.sql.TxExecute``: a PostgreSQL statement as a 2PC participant.

    ``prepare`` runs the statement in its own transaction and ends it with ``PREPARE
    TRANSACTION <gid>``, where ``gid`` comes from the step's idempotency key, so the
    change survives a crash of this process and of the server. ``commit`` and ``abort``
    open a fresh connection (they may run in another process after a resume) and finish
    the prepared transaction if it still exists, so calling them twice is harmless.
    A prepare re-run for the same step first rolls back what an earlier attempt left
    prepared.
    """

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}  # gid -> URL, for commit/abort in this process

    def _finish(self, verb: str, url: str, gid: str) -> bool:
        psycopg = _psycopg()
        from psycopg import sql as pgsql

        try:
            with psycopg.connect(url, autocommit=True) as conn:
                found = conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s AND "
                                     "database = current_database()", [gid]).fetchone()
                if found:
                    conn.execute(pgsql.SQL(verb + " PREPARED {}").format(pgsql.Literal(gid)))
                return bool(found)
        except psycopg.Error as exc:
            raise NodeError("SqlError", f"{verb} PREPARED {gid!r} failed: {exc}") from exc

    def prepare(self, db: str, sql: str, params: list[Any] | None = None, *, ctx: Any) -> dict[str, Any]:
        if not is_postgres(db):
            raise NodeError("SqlError", "TxExecute needs a postgresql:// URL (SQLite has no two-phase commit)")
        psycopg = _psycopg()
        from psycopg import sql as pgsql

        gid = _gid(ctx)
        url = str(db)
        _remember(url, ctx)
        self._finish("ROLLBACK", url, gid)  # left over from an attempt that crashed
        try:
            with psycopg.connect(url) as conn:
                with conn.cursor() as cur:
                    cur.execute(sql, _pg_params(params) or None)
                    raw = cur.fetchall() if cur.description else []
                    rowcount = max(cur.rowcount, 0)
                conn.execute(pgsql.SQL("PREPARE TRANSACTION {}").format(pgsql.Literal(gid)))
        except psycopg.Error as exc:
            raise _sql_error(exc, sql) from exc
        self._urls[gid] = url
        lastrowid = None
        if raw and isinstance(raw[-1][0], int) and not isinstance(raw[-1][0], bool):
            lastrowid = raw[-1][0]
        return {"rowcount": rowcount, "lastrowid": lastrowid}

    def _end(self, verb: str, ctx: Any) -> None:
        gid = _gid(ctx)
        url = self._urls.pop(gid, None) or _find_prepared(gid, ctx)
        if url is not None:
            self._finish(verb, url, gid)

    def commit(self, *, ctx: Any) -> None:
        self._end("COMMIT", ctx)

    def abort(self, *, ctx: Any) -> None:
        self._end("ROLLBACK", ctx)


# The runtime passes only ``ctx`` to commit/abort. Within one process the participant
# remembers which server it prepared on; after a restart it looks the prepared
# transaction up on every server TxExecute has prepared on, listed (URLs only) in
# ``<.kflow folder>/.kflow/pg-2pc.json`` (or $KFLOW_PG_2PC_REGISTRY).
def _registry_path(ctx: Any):
    import os
    from pathlib import Path

    env = os.environ.get("KFLOW_PG_2PC_REGISTRY")
    return Path(env) if env else resolve_path(".kflow/pg-2pc.json", ctx)


def _remember(url: str, ctx: Any) -> None:
    path = _registry_path(ctx)
    try:
        urls = set(_json.loads(path.read_text())) if path.exists() else set()
    except (OSError, ValueError):
        urls = set()
    if url in urls:
        return
    urls.add(url)
    try:
        from .file import atomic_write

        atomic_write(path, _json.dumps(sorted(urls)).encode())
    except OSError:
        pass


def _find_prepared(gid: str, ctx: Any) -> str | None:
    """After a restart: which remembered server holds the prepared transaction ``gid``."""
    path = _registry_path(ctx)
    try:
        urls = _json.loads(path.read_text()) if path.exists() else []
    except (OSError, ValueError):
        return None
    psycopg = _psycopg()
    for url in urls:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                # pg_prepared_xacts is server-wide; COMMIT PREPARED must run in the
                # database that prepared it
                if conn.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s AND "
                                "database = current_database()", [gid]).fetchone():
                    return url
        except psycopg.Error:
            continue
    return None


# ----------------------------------------------------------------------------- nodes


async def query(db: str, sql: str, params: list[Any] | None = None, *, ctx: Any = None) -> dict[str, Any]:
    """Run a query; rows are maps from column name to value."""
    if is_postgres(db):
        return await _pg_run(str(db), sql, params, write=False)
    return await _sqlite_query(_sqlite_path(db, ctx), sql, params)


async def execute(db: str, sql: str, params: list[Any] | None = None, *, ctx: Any = None) -> dict[str, Any]:
    """Run one statement and commit it."""
    if is_postgres(db):
        return await _pg_run(str(db), sql, params, write=True)
    return await _sqlite_execute(_sqlite_path(db, ctx), sql, params)


async def close_all() -> None:
    """Close every cached connection (SQLite and, for the running loop, PostgreSQL)."""
    conns = list(_sqlite_conns.values())
    _sqlite_conns.clear()
    for conn in conns:
        try:
            await conn.close()
        except Exception:
            pass
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for conn in list(_pg_conns.pop(loop, {}).values()):
        try:
            await conn.close()
        except Exception:
            pass


__all__ = ["query", "execute", "close_all", "is_postgres", "PgParticipant"]
