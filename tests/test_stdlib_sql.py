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


# ----------------------------------------------------------------------------- PostgreSQL 2PC

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throwaway_cluster():
    """Start a private PostgreSQL with max_prepared_transactions > 0; (url, stop) or reason."""
    import glob
    import os
    import shutil
    import subprocess
    import tempfile

    tmp_root = tempfile.mkdtemp(prefix="kflow-pg-")  # directly in /tmp: the postgres user can reach it

    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb") or next(
        (f"{d}/initdb" for d in bindirs if os.path.exists(f"{d}/initdb")), None)
    if initdb is None:
        return None, "no initdb to start a throwaway PostgreSQL with max_prepared_transactions > 0"
    pg_ctl = os.path.join(os.path.dirname(initdb), "pg_ctl")
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no postgres user to start PostgreSQL as"
        runuser = shutil.which("runuser")
        if runuser is None:
            return None, "running as root without runuser to start PostgreSQL as postgres"
        prefix = [runuser, "-u", "postgres", "--"]
        os.chown(tmp_root, pw.pw_uid, pw.pw_gid)
    data = os.path.join(tmp_root, "data")
    port = _free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", data, "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        opts = (f"-c max_prepared_transactions=10 -c fsync=off -c listen_addresses=127.0.0.1 "
                f"-p {port} -k {tmp_root}")
        subprocess.run([*prefix, pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(tmp_root, "log"),
                        "-w", "start"], check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
        shutil.rmtree(tmp_root, ignore_errors=True)
        return None, f"could not start a throwaway PostgreSQL: {detail[0]}"
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(tmp_root, ignore_errors=True)
        return None, f"could not start a throwaway PostgreSQL: {exc}"

    def stop():
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(tmp_root, ignore_errors=True)

    return (f"postgresql://postgres@127.0.0.1:{port}/postgres", stop), None


@pytest.fixture(scope="module")
def pg2pc(tmp_path_factory):
    """A PostgreSQL URL whose server allows prepared transactions, and a second database
    on it: $KFLOW_TEST_PG_2PC_URL, else localhost:5432/test when it allows them, else a
    throwaway cluster; skipped, with the reason, when none can be had."""
    import os

    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    url = os.environ.get("KFLOW_TEST_PG_2PC_URL")
    stop = None
    if url is None and _PG_SKIP is None:
        with psycopg.connect(PG_URL) as conn:
            if int(conn.execute("SHOW max_prepared_transactions").fetchone()[0]) > 0:
                url = PG_URL
    if url is None:
        got, reason = _throwaway_cluster()
        if got is None:
            pytest.skip(reason)
        url, stop = got
    second = url.rsplit("/", 1)[0] + "/kflow_2pc_b"
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'kflow_2pc_b'").fetchone():
            conn.execute("CREATE DATABASE kflow_2pc_b")
    for u in (url, second):
        with psycopg.connect(u, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS kflow_acct")
            conn.execute("CREATE TABLE kflow_acct (id TEXT PRIMARY KEY, balance NUMERIC NOT NULL "
                         "CHECK (balance >= 0))")
            conn.execute("INSERT INTO kflow_acct VALUES ('a', 100), ('b', 0)")
    yield url, second
    if stop:
        stop()


class TxCtx:
    def __init__(self, key, base_dir):
        self.run_id = "r"
        self.step_key = key
        self.attempt = 1
        self.idempotency_key = f"r:{key}"
        self.base_dir = str(base_dir)

    def log(self, msg):
        pass


def _balance(url, acct):
    import psycopg

    with psycopg.connect(url) as conn:
        return float(conn.execute("SELECT balance FROM kflow_acct WHERE id = %s", [acct]).fetchone()[0])


def _prepared(url):
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT gid FROM pg_prepared_xacts ORDER BY gid")]


def test_pg_participant_prepare_commit_abort(pg2pc, tmp_path, monkeypatch):
    monkeypatch.setenv("KFLOW_PG_2PC_REGISTRY", str(tmp_path / "registry.json"))
    url, _ = pg2pc
    p = sql.PgParticipant()
    ctx = TxCtx("debit", tmp_path)
    out = p.prepare(url, "UPDATE kflow_acct SET balance = balance - %s WHERE id = %s", [30, "a"], ctx=ctx)
    assert out == {"rowcount": 1, "lastrowid": None}
    assert "kflow:r:debit" in _prepared(url)
    assert _balance(url, "a") == 100.0  # prepared, not yet visible
    # a prepare re-run after a crash replaces the earlier prepared transaction
    p.prepare(url, "UPDATE kflow_acct SET balance = balance - %s WHERE id = %s", [30, "a"], ctx=ctx)
    assert _prepared(url).count("kflow:r:debit") == 1
    p.commit(ctx=ctx)
    assert _balance(url, "a") == 70.0 and "kflow:r:debit" not in _prepared(url)
    p.commit(ctx=ctx)  # again, as after a crash: harmless
    assert _balance(url, "a") == 70.0

    ctx2 = TxCtx("debit2", tmp_path)
    p.prepare(url, "UPDATE kflow_acct SET balance = balance - 10 WHERE id = 'a'", ctx=ctx2)
    p.abort(ctx=ctx2)
    p.abort(ctx=ctx2)
    assert _balance(url, "a") == 70.0 and _prepared(url) == []


def test_pg_participant_commit_after_restart_finds_the_server(pg2pc, tmp_path, monkeypatch):
    monkeypatch.setenv("KFLOW_PG_2PC_REGISTRY", str(tmp_path / "registry.json"))
    url, _ = pg2pc
    ctx = TxCtx("credit", tmp_path)
    start = _balance(url, "b")
    sql.PgParticipant().prepare(url, "UPDATE kflow_acct SET balance = balance + 5 WHERE id = 'b'", ctx=ctx)
    sql.PgParticipant().commit(ctx=ctx)  # a new instance: as in a resumed process
    assert _balance(url, "b") == start + 5 and _prepared(url) == []


def test_pg_participant_failed_prepare_leaves_nothing(pg2pc, tmp_path, monkeypatch):
    monkeypatch.setenv("KFLOW_PG_2PC_REGISTRY", str(tmp_path / "registry.json"))
    url, _ = pg2pc
    with pytest.raises(NodeError) as e:
        sql.PgParticipant().prepare(url, "UPDATE kflow_acct SET balance = balance - 1000 WHERE id = 'a'",
                                    ctx=TxCtx("big", tmp_path))
    assert e.value.kind == "SqlError" and "check" in str(e.value).lower()
    assert _prepared(url) == []


def test_pg_participant_refuses_sqlite(tmp_path):
    with pytest.raises(NodeError) as e:
        sql.PgParticipant().prepare("x.db", "SELECT 1", ctx=TxCtx("k", tmp_path))
    assert "postgresql://" in str(e.value)


TWO_PC = """
import std.sql

## Move money between two PostgreSQL databases atomically.
workflow Move(a: str, b: str, amount: int) -> int {
  transaction 2pc {
    let debit = sql.TxExecute(db: a, sql: "UPDATE kflow_acct SET balance = balance - %s WHERE id = 'a'", params: [amount])
    let credit = sql.TxExecute(db: b, sql: "UPDATE kflow_acct SET balance = balance + %s WHERE id = 'b'", params: [amount])
  }
  return debit.rowcount + credit.rowcount
}
"""


def test_pg_two_phase_commit_through_kflow_run(pg2pc, tmp_path):
    import importlib.util
    import json
    import subprocess
    import sys

    if importlib.util.find_spec("kailash_dsl.runtime.vm") is None or \
            importlib.util.find_spec("kailash_dsl.compiler.api") is None:
        pytest.skip("the checker or the durable runtime has not landed yet")
    url, second = pg2pc
    prog = tmp_path / "move.kflow"
    prog.write_text(TWO_PC, encoding="utf-8")

    def run(amount, run_id):
        proc = subprocess.run(
            [sys.executable, "-m", "kailash_dsl", "run", str(prog), "--input",
             json.dumps({"a": url, "b": second, "amount": amount}), "--run-id", run_id,
             "--db", str(tmp_path / "runs.db"), "--format", "json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
        return json.loads(proc.stdout or "null") or proc.stderr

    a0, b0 = _balance(url, "a"), _balance(second, "b")
    ok = run(25, "move-1")
    assert ok["status"] == "completed" and ok["output"] == 2, ok
    assert (_balance(url, "a"), _balance(second, "b")) == (a0 - 25, b0 + 25)
    bad = run(10_000, "move-2")  # the debit's CHECK fails at prepare: nothing moves
    assert bad["status"] == "failed", bad
    assert (_balance(url, "a"), _balance(second, "b")) == (a0 - 25, b0 + 25)
    assert _prepared(url) == [] and _prepared(second) == []


CRASHY_PG = '''
import os
from pathlib import Path
from kailash_dsl.stdlib.sql import PgParticipant

class CrashyPg(PgParticipant):
    """Dies the first time it is asked to commit: after both prepares and the decision."""

    def commit(self, *, ctx):
        marker = Path(os.environ["CRASHY_MARKER"])
        if not marker.exists():
            marker.write_text("1")
            os._exit(137)
        super().commit(ctx=ctx)
'''

TWO_PC_CRASHY = """
@impl("crashy_pg:CrashyPg")
@effect(write, resource: "pg")
@transactional(resource: "pg")
node Exec(db: str, sql: str, params: list[json] = []) -> {rowcount: int, lastrowid: int?}

workflow Move(a: str, b: str, amount: int) -> int {
  transaction 2pc {
    let debit = Exec(db: a, sql: "UPDATE kflow_acct SET balance = balance - %s WHERE id = 'a'", params: [amount])
    let credit = Exec(db: b, sql: "UPDATE kflow_acct SET balance = balance + %s WHERE id = 'b'", params: [amount])
  }
  return debit.rowcount + credit.rowcount
}
"""


def test_pg_crash_between_prepare_and_commit_is_finished_by_resume(pg2pc, tmp_path):
    """The process dies after both databases prepared and the decision was journaled;
    `kflow resume` carries the decision out: both commit, nothing stays prepared."""
    import json
    import os
    import subprocess
    import sys

    url, second = pg2pc
    (tmp_path / "crashy_pg.py").write_text(CRASHY_PG, encoding="utf-8")
    prog = tmp_path / "move.kflow"
    prog.write_text(TWO_PC_CRASHY, encoding="utf-8")
    env = dict(os.environ, CRASHY_MARKER=str(tmp_path / "crashed"),
               KFLOW_PG_2PC_REGISTRY=str(tmp_path / "registry.json"))
    db = str(tmp_path / "runs.db")
    a0, b0 = _balance(url, "a"), _balance(second, "b")

    def kflow(*args):
        return subprocess.run([sys.executable, "-m", "kailash_dsl", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    first = kflow("run", str(prog), "--input", json.dumps({"a": url, "b": second, "amount": 7}),
                  "--run-id", "pgcrash", "--db", db, "--format", "json")
    assert first.returncode == 137 and first.stdout == "", first.stderr
    # both held, in doubt (pg_prepared_xacts is server-wide: both databases show up)
    assert {"kflow:pgcrash:debit", "kflow:pgcrash:credit"} <= set(_prepared(url))
    assert (_balance(url, "a"), _balance(second, "b")) == (a0, b0)
    done = kflow("resume", "pgcrash", "--db", db, "--format", "json")
    out = json.loads(done.stdout)
    assert out["status"] == "completed" and out["output"] == 2, (out, done.stderr)
    assert _prepared(url) == [] and _prepared(second) == []
    assert (_balance(url, "a"), _balance(second, "b")) == (a0 - 7, b0 + 7)
