"""std.sql implementations: SQLite on a temporary file, PostgreSQL on localhost:5432/test
(skipped, with the reason shown, when that server is unreachable)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kailash_dsl.stdlib import sql
from kailash_dsl.stdlib.errors import NodeError


class Ctx:
    def __init__(self, base_dir):
        self.base_dir = str(base_dir)

    def log(self, msg):
        pass


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    asyncio.run(sql.close_all())


# ----------------------------------------------------------------------------- SQLite

def test_sqlite_relative_path_create_insert_query(tmp_path):
    ctx = Ctx(tmp_path)

    async def go():
        await sql.execute("shop.db", "CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT, qty INT)", ctx=ctx)
        a = await sql.execute("shop.db", "INSERT INTO items (sku, qty) VALUES (?, ?)", ["A1", 2], ctx=ctx)
        b = await sql.execute("shop.db", "INSERT INTO items (sku, qty) VALUES (?, ?)", ["B2", 5], ctx=ctx)
        u = await sql.execute("shop.db", "UPDATE items SET qty = qty + 1", ctx=ctx)
        q = await sql.query("shop.db", "SELECT sku, qty FROM items WHERE qty > ? ORDER BY sku", [0], ctx=ctx)
        return a, b, u, q

    a, b, u, q = run(go())
    assert a == {"rowcount": 1, "lastrowid": 1}
    assert b == {"rowcount": 1, "lastrowid": 2}
    assert u == {"rowcount": 2, "lastrowid": None}
    assert q == {"rows": [{"sku": "A1", "qty": 3}, {"sku": "B2", "qty": 6}], "count": 2}
    assert (tmp_path / "shop.db").exists()


def test_sqlite_parameters_are_bound_not_spliced(tmp_path):
    db = str(tmp_path / "x.db")
    evil = "x'); DROP TABLE t; --"

    async def go():
        await sql.execute(db, "CREATE TABLE t (name TEXT)")
        await sql.execute(db, "INSERT INTO t VALUES (?)", [evil])
        return await sql.query(db, "SELECT name FROM t")

    assert run(go())["rows"] == [{"name": evil}]


def test_sqlite_json_params_and_blob_results(tmp_path):
    db = str(tmp_path / "x.db")

    async def go():
        await sql.execute(db, "CREATE TABLE t (doc TEXT, b BLOB, flag INT)")
        await sql.execute(db, "INSERT INTO t VALUES (?, ?, ?)", [{"a": [1]}, None, True])
        await sql.execute(db, "UPDATE t SET b = x'00ff'")
        return await sql.query(db, "SELECT doc, b, flag, json_extract(doc, '$.a[0]') AS first FROM t")

    row = run(go())["rows"][0]
    assert row == {"doc": '{"a":[1]}', "b": "AP8=", "flag": 1, "first": 1}


def test_sqlite_script_without_params(tmp_path):
    db = str(tmp_path / "x.db")

    async def go():
        r = await sql.execute(db, "CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1);")
        q = await sql.query(db, "SELECT count(*) AS n FROM a")
        return r, q

    r, q = run(go())
    assert r == {"rowcount": 0, "lastrowid": None}
    assert q["rows"] == [{"n": 1}]


def test_sqlite_error_kind_and_rollback(tmp_path):
    db = str(tmp_path / "x.db")

    async def go():
        await sql.execute(db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
        await sql.execute(db, "INSERT INTO t VALUES (1)")
        with pytest.raises(NodeError) as e:
            await sql.execute(db, "INSERT INTO t VALUES (1)")
        assert e.value.kind == "SqlError" and "UNIQUE" in str(e.value)
        with pytest.raises(NodeError) as e:
            await sql.query(db, "SELECT * FROM missing")
        assert e.value.kind == "SqlError" and "missing" in str(e.value)
        return await sql.query(db, "SELECT count(*) AS n FROM t")

    assert run(go())["rows"] == [{"n": 1}]


def test_sqlite_query_never_changes_anything(tmp_path):
    db = str(tmp_path / "x.db")

    async def go():
        await sql.execute(db, "CREATE TABLE t (x)")
        await sql.query(db, "INSERT INTO t VALUES (1)")  # misuse: rolled back
        return await sql.query(db, "SELECT count(*) AS n FROM t")

    assert run(go())["rows"] == [{"n": 0}]


def test_sqlite_one_connection_per_path_and_concurrent_steps(tmp_path):
    db = str(tmp_path / "x.db")

    async def go():
        await sql.execute(db, "CREATE TABLE t (n INT)")
        await asyncio.gather(*(sql.execute(db, "INSERT INTO t VALUES (?)", [i]) for i in range(50)))
        q = await sql.query(db, "SELECT count(*) AS n, sum(n) AS s FROM t")
        return q, len(sql._sqlite_conns)

    q, conns = run(go())
    assert q["rows"] == [{"n": 50, "s": sum(range(50))}]
    assert conns == 1


def test_sqlite_url_prefix_and_other_loop(tmp_path):
    db = f"sqlite:///{tmp_path / 'u.db'}"
    run(sql.execute(db, "CREATE TABLE t (x)"))
    run(sql.execute(db, "INSERT INTO t VALUES (7)"))  # a fresh event loop, same connection
    assert run(sql.query(db, "SELECT x FROM t"))["rows"] == [{"x": 7}]


# ----------------------------------------------------------------------------- PostgreSQL

PG_URL = "postgresql://localhost:5432/test"


def _pg_unreachable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'kailash-dsl[postgres]')"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"PostgreSQL at {PG_URL} unreachable: {str(exc).strip().splitlines()[0]}"


_PG_SKIP = _pg_unreachable()
needs_pg = pytest.mark.skipif(_PG_SKIP is not None, reason=_PG_SKIP or "")


@pytest.fixture
def pg_table():
    import psycopg

    name = f"kflow_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id SERIAL PRIMARY KEY, sku TEXT UNIQUE, qty INT, "
                     f"price NUMERIC(10,2), doc JSONB, at TIMESTAMPTZ DEFAULT now())")
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@needs_pg
def test_postgres_execute_and_query(pg_table):
    t = pg_table

    async def go():
        a = await sql.execute(PG_URL, f"INSERT INTO {t} (sku, qty, price, doc) VALUES (%s, %s, %s, %s) RETURNING id",
                              ["A1", 2, 9.5, {"tags": ["x"]}])
        b = await sql.execute(PG_URL, f"INSERT INTO {t} (sku, qty, price) VALUES (%s, %s, %s)", ["B2", 5, 1])
        u = await sql.execute(PG_URL, f"UPDATE {t} SET qty = qty + 1")
        q = await sql.query(PG_URL, f"SELECT sku, qty, price, doc, at FROM {t} WHERE qty > %s ORDER BY sku", [0])
        return a, b, u, q

    a, b, u, q = run(go())
    assert a == {"rowcount": 1, "lastrowid": 1}
    assert b == {"rowcount": 1, "lastrowid": None}
    assert u == {"rowcount": 2, "lastrowid": None}
    assert q["count"] == 2
    first = q["rows"][0]
    assert first["sku"] == "A1" and first["qty"] == 3 and first["price"] == 9.5
    assert first["doc"] == {"tags": ["x"]}
    assert isinstance(first["at"], str) and first["at"][:2] == "20"
    assert q["rows"][1]["price"] == 1


@needs_pg
def test_postgres_error_kind(pg_table):
    t = pg_table

    async def go():
        await sql.execute(PG_URL, f"INSERT INTO {t} (sku) VALUES (%s)", ["A"])
        with pytest.raises(NodeError) as e:
            await sql.execute(PG_URL, f"INSERT INTO {t} (sku) VALUES (%s)", ["A"])
        assert e.value.kind == "SqlError" and "duplicate" in str(e.value)
        # the connection is still usable after the error
        return await sql.query(PG_URL, f"SELECT count(*) AS n FROM {t}")

    assert run(go())["rows"] == [{"n": 1}]


def test_postgres_unreachable_is_sql_error():
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    with pytest.raises(NodeError) as e:
        run(sql.query("postgresql://127.0.0.1:1/none?connect_timeout=2", "SELECT 1"))
    assert e.value.kind == "SqlError" and "cannot connect" in str(e.value)
