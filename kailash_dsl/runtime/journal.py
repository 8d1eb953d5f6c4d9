"""The run journal: SQLite (WAL) through aiosqlite.

What is stored: runs (program hash, source path, input, status, output, error, owner),
step outcomes, events, and signals. The VM buffers outcomes and writes them in *group
commits* at the flushes the compiler placed (§7 rule 1), each one transaction done in a
single hop to aiosqlite's thread.

The :class:`Store` protocol is all the VM uses, so a PostgreSQL store can be added
without touching the VM. Schema changes go through :data:`MIGRATIONS`; a journal written
by a newer kflow is refused rather than guessed at.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        program_hash TEXT NOT NULL,
        source_path TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        owner TEXT,
        wake_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
    CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        ok INTEGER NOT NULL,
        value TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        started_at REAL,
        finished_at REAL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        step TEXT,
        data TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS signals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        payload TEXT,
        sent_at REAL NOT NULL,
        consumed_by TEXT
    );
    CREATE INDEX IF NOT EXISTS signals_run ON signals(run_id, name);
    """,
    2: """
    ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    """,
}


class JournalError(Exception):
    """The journal cannot be used (bad path, not a journal, newer schema...)."""


@dataclass
class RunRecord:
    run_id: str
    workflow: str
    program_hash: str
    source_path: str
    input: Any
    status: str
    output: Any
    error: Any
    owner: str | None
    wake_at: float | None
    created_at: float
    updated_at: float

    cancel_requested: bool = False
    #: the input's JSON text when the caller has it already (a request's body), so the
    #: journal need not encode the input again
    input_text: str | None = None

    @classmethod
    def from_row(cls, row) -> "RunRecord":
        return cls(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5],
                   json.loads(row[6]) if row[6] is not None else None,
                   json.loads(row[7]) if row[7] is not None else None,
                   row[8], row[9], row[10], row[11],
                   bool(row[12]) if len(row) > 12 else False)

    def result(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "output": self.output,
                "error": self.error}


@dataclass
class StepRecord:
    key: str
    ok: bool
    value: Any  # JSON text already encoded
    attempts: int = 1
    started_at: float | None = None
    finished_at: float | None = None


class Store(Protocol):  # pragma: no cover - interface
    async def create_run(self, rec: RunRecord) -> None: ...
    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def load_steps(self, run_id: str) -> dict[str, tuple[bool, Any]]: ...
    async def commit(self, run_id: str, steps: list[StepRecord], events: list[tuple],
                     run_update: dict | None = None) -> None: ...
    async def claim(self, run_id: str, owner: str) -> str | None: ...


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Is the process named in ``owner`` still running (on this host)?"""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot tell: assume alive (another machine)
    try:
        pid_i = int(pid)
    except ValueError:
        return False
    if pid_i == os.getpid():
        return True
    try:
        os.kill(pid_i, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) is not alive
    try:
        with open(f"/proc/{pid_i}/stat", "rb") as f:
            state = f.read().split(b")")[-1].split()[0]
        if state == b"Z":
            return False
    except OSError:
        pass
    return True


def check_journal_file(path: Path) -> None:
    """Refuse clearly when ``path`` exists but is not a kflow journal we understand."""
    if not path.exists():
        parent = path.parent
        for anc in [parent, *parent.parents]:
            if anc.exists() and not anc.is_dir():
                raise JournalError(f"cannot create the journal {path}: {anc} is a file, "
                                   "not a folder")
        if not parent.exists():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(f"cannot create the journal folder {parent}: "
                                   f"{exc.strerror}") from None
        if not os.access(parent, os.W_OK):
            raise JournalError(f"cannot write the journal: folder {parent} is not writable")
        return
    if path.is_dir():
        raise JournalError(f"{path} is a folder, not a journal file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}: {exc.strerror}") from None
    if head and head != b"SQLite format 3\x00":
        raise JournalError(f"{path} is not a kflow journal (not an SQLite database)")
    if head:
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "kflow_meta" not in tables:
                    raise JournalError(f"{path} is an SQLite database but not a kflow "
                                       "journal (no kflow_meta table)")
                if "kflow_meta" in tables:
                    row = con.execute("SELECT value FROM kflow_meta WHERE key='schema_version'"
                                      ).fetchone()
                    version = int(row[0]) if row else 0
                    if version > SCHEMA_VERSION:
                        raise JournalError(
                            f"{path} was written by a newer kflow (journal schema {version}; "
                            f"this kflow understands up to {SCHEMA_VERSION}); upgrade kflow")
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path} is not a usable journal: {exc}") from None


def _migrate(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS kflow_meta (key TEXT PRIMARY KEY, value TEXT)")
    row = con.execute("SELECT value FROM kflow_meta WHERE key='schema_version'").fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal schema {version} is newer than this kflow understands "
                           f"({SCHEMA_VERSION}); upgrade kflow")
    for v in range(version + 1, SCHEMA_VERSION + 1):
        con.executescript(MIGRATIONS[v])
        con.execute("INSERT OR REPLACE INTO kflow_meta VALUES ('schema_version', ?)", (str(v),))
    con.commit()


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# sqlite3 binds None through its adaptation protocol: two failed attribute lookups, each
# formatting an AttributeError, ~3,000 machine instructions per NULL parameter (a run
# and its events bind about six). An adapter found in the registry skips that; `{}.get`
# returns None for None without a Python frame, so NULL is bound exactly as before.
if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
    sqlite3.register_adapter(type(None), {}.get)


_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json(v: Any, strict: bool = False) -> str:
    """The journal's JSON text of a value: compact, non-ASCII kept as is. ``strict``
    raises ValueError for infinities and NaN (valid for Python's json, not for JSON)."""
    return (_STRICT if strict else _ENCODER).encode(v)


INSERT_RUN = ("INSERT INTO runs (run_id, workflow, program_hash, source_path, input, "
              "status, output, error, owner, wake_at, created_at, updated_at) "
              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")


def run_row(rec: RunRecord, update: dict | None = None, now: float = 0.0) -> tuple:
    """The values of :data:`INSERT_RUN` for ``rec``, with the columns of ``update``
    (status, output, error, owner, wake_at) applied at time ``now``."""
    text = rec.input_text if rec.input_text is not None else encode_json(rec.input)
    if not update:
        return (rec.run_id, rec.workflow, rec.program_hash, rec.source_path, text,
                rec.status, None, None, rec.owner, None, rec.created_at, rec.updated_at)
    g = update.get
    return (rec.run_id, rec.workflow, rec.program_hash, rec.source_path, text,
            g("status", rec.status), g("output"), g("error"), g("owner", rec.owner),
            g("wake_at"), rec.created_at, now)


INSERT_STEP = "INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?)"
INSERT_EVENT = "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?)"
#: the columns of `runs` a commit may update (with updated_at)
RUN_UPDATE_COLUMNS = ("status", "output", "error", "owner", "wake_at")


def step_row(run_id: str, s: StepRecord) -> tuple:
    return (run_id, s.key, 1 if s.ok else 0, s.value, s.attempts, s.started_at,
            s.finished_at)


def update_run_sql(columns) -> str:
    """The UPDATE of ``columns`` (and updated_at) of one run; values, then time, then id."""
    return "UPDATE runs SET " + ", ".join(f"{k}=?" for k in columns) + \
        ", updated_at=? WHERE run_id=?"


class SqliteJournal:
    """The default store: one SQLite file in WAL mode, synchronous=NORMAL.

    WAL with synchronous=NORMAL makes a committed transaction survive a killed process
    (the case §7 is about); it is the setting the benchmark's raw baseline uses too.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = None
        self._seq: dict[str, int] = {}

    async def open(self) -> "SqliteJournal":
        import aiosqlite

        existed = self.path.exists()
        check_journal_file(self.path)  # an existing file was opened (read-only) there
        if not existed:
            try:  # probe synchronously: a failed aiosqlite connect leaves its thread behind
                sqlite3.connect(str(self.path)).close()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot open the journal {self.path}: {exc}") from None
        try:
            self.conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from None

        def setup(con: sqlite3.Connection) -> None:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=10000")
            con.isolation_level = ""  # explicit transactions via commit()
            _migrate(con)

        try:
            await self._run(setup)
        except sqlite3.Error as exc:
            await self.close()
            raise JournalError(f"cannot use the journal {self.path}: {exc}") from None
        return self

    async def _run(self, fn, *args):
        conn = self.conn
        return await conn._execute(fn, conn._conn, *args)

    async def close(self) -> None:
        if self.conn is not None:
            try:
                await self.conn.close()
            finally:
                self.conn = None

    # -- runs ------------------------------------------------------------------
    async def create_run(self, rec: RunRecord) -> None:
        def work(con):
            con.execute(INSERT_RUN, run_row(rec))
            con.commit()
        await self._run(work)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def work(con):
            return con.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        row = await self._run(work)
        return RunRecord.from_row(row) if row else None

    async def list_runs(self, status: str | None = None, limit: int = 200) -> list[RunRecord]:
        def work(con):
            if status:
                q = con.execute("SELECT * FROM runs WHERE status=? ORDER BY created_at DESC "
                                "LIMIT ?", (status, limit))
            else:
                q = con.execute("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
            return q.fetchall()
        return [RunRecord.from_row(r) for r in await self._run(work)]

    async def claim(self, run_id: str, owner: str) -> str | None:
        """Take the run for this process. Returns the live owner that refused us, or None."""
        def work(con):
            con.execute("BEGIN IMMEDIATE")  # two resumers must not both win
            row = con.execute("SELECT owner, status FROM runs WHERE run_id=?",
                              (run_id,)).fetchone()
            if row is None:
                con.rollback()
                return "missing"
            cur, status = row
            if status == "running" and cur and cur != owner and owner_alive(cur):
                con.rollback()
                return cur
            con.execute("UPDATE runs SET owner=?, status=CASE WHEN status IN "
                        "('waiting','running') THEN 'running' ELSE status END, updated_at=? "
                        "WHERE run_id=?", (owner, time.time(), run_id))
            con.commit()
            return None
        return await self._run(work)

    # -- steps and events ------------------------------------------------------
    async def load_steps(self, run_id: str) -> dict[str, tuple[bool, Any]]:
        def work(con):
            return con.execute("SELECT key, ok, value FROM steps WHERE run_id=?",
                               (run_id,)).fetchall()
        rows = await self._run(work)
        return {k: (bool(ok), json.loads(v) if v is not None else None) for k, ok, v in rows}

    async def load_events(self, run_id: str, after: int = 0) -> list[dict]:
        def work(con):
            return con.execute("SELECT seq, ts, type, step, data FROM events WHERE run_id=? "
                               "AND seq>? ORDER BY seq", (run_id, after)).fetchall()
        rows = await self._run(work)
        return [{"seq": s, "ts": ts, "type": t, "step": st,
                 "data": json.loads(d) if d is not None else None} for s, ts, t, st, d in rows]

    async def load_step_rows(self, run_id: str) -> list[dict]:
        def work(con):
            return con.execute("SELECT key, ok, value, attempts, started_at, finished_at "
                               "FROM steps WHERE run_id=? ORDER BY finished_at",
                               (run_id,)).fetchall()
        rows = await self._run(work)
        return [{"key": k, "ok": bool(ok), "value": json.loads(v) if v else None,
                 "attempts": a, "started_at": s, "finished_at": f}
                for k, ok, v, a, s, f in rows]

    async def next_seq(self, run_id: str) -> int:
        def work(con):
            row = con.execute("SELECT MAX(seq) FROM events WHERE run_id=?", (run_id,)).fetchone()
            return row[0] or 0
        return await self._run(work)

    async def commit(self, run_id: str, steps: list[StepRecord], events: list[tuple],
                     run_update: dict | None = None) -> None:
        """One group commit: step outcomes, events and the run's new state together."""
        step_rows = [step_row(run_id, s) for s in steps]
        event_rows = [(run_id, *e) for e in events]

        def work(con):
            if step_rows:
                con.executemany(INSERT_STEP, step_rows)
            if event_rows:
                con.executemany(INSERT_EVENT, event_rows)
            if run_update:
                con.execute(update_run_sql(run_update),
                            (*run_update.values(), time.time(), run_id))
            con.commit()
        await self._run(work)

    async def request_cancel(self, run_id: str) -> None:
        def work(con):
            con.execute("UPDATE runs SET cancel_requested=1, updated_at=? WHERE run_id=?",
                        (time.time(), run_id))
            con.commit()
        await self._run(work)

    async def cancel_requested(self, run_id: str) -> bool:
        def work(con):
            row = con.execute("SELECT cancel_requested FROM runs WHERE run_id=?",
                              (run_id,)).fetchone()
            return bool(row and row[0])
        return await self._run(work)

    # -- signals ---------------------------------------------------------------
    async def add_signal(self, run_id: str, name: str, payload: Any) -> None:
        def work(con):
            con.execute("INSERT INTO signals (run_id, name, payload, sent_at) VALUES (?,?,?,?)",
                        (run_id, name, encode_json(payload), time.time()))
            con.commit()
        await self._run(work)

    async def peek_signal(self, run_id: str, name: str,
                          sent_by: float | None = None) -> tuple[int, Any] | None:
        """The oldest unconsumed signal ``name`` (sent no later than ``sent_by``)."""
        def work(con):
            return con.execute("SELECT id, payload FROM signals WHERE run_id=? AND name=? AND "
                               "consumed_by IS NULL AND sent_at <= ? ORDER BY id LIMIT 1",
                               (run_id, name, sent_by if sent_by is not None else 1e300)
                               ).fetchone()
        row = await self._run(work)
        return (row[0], json.loads(row[1])) if row else None

    async def consume_signal(self, run_id: str, signal_id: int, key: str,
                             step: StepRecord, events: list[tuple]) -> None:
        def work(con):
            con.execute("UPDATE signals SET consumed_by=? WHERE id=?", (key, signal_id))
            con.execute(INSERT_STEP, step_row(run_id, step))
            if events:
                con.executemany(INSERT_EVENT, [(run_id, *e) for e in events])
            con.commit()
        await self._run(work)


    # -- queries for a scheduler (kflow serve) --------------------------------------
    async def candidates(self, files: list[str]) -> list[tuple]:
        """Runs of ``files`` that are running or waiting, with their newest unconsumed
        signal id: (run_id, status, owner, wake_at, cancel_requested, max_signal)."""
        if not files:
            return []
        marks = ",".join("?" * len(files))

        def work(con):
            return con.execute(
                "SELECT r.run_id, r.status, r.owner, r.wake_at, r.cancel_requested, "
                "(SELECT MAX(s.id) FROM signals s WHERE s.run_id = r.run_id AND "
                "s.consumed_by IS NULL) FROM runs r WHERE r.status IN ('running', 'waiting') "
                f"AND r.source_path IN ({marks})", files).fetchall()
        return await self._run(work)

    async def pending_signals(self, run_id: str) -> int:
        def work(con):
            return con.execute("SELECT COUNT(*) FROM signals WHERE run_id=? AND consumed_by "
                               "IS NULL", (run_id,)).fetchone()[0]
        return await self._run(work)

    async def count_by_status(self) -> dict[str, int]:
        def work(con):
            return con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return dict(await self._run(work))


def default_db_path() -> Path:
    return Path(os.environ.get("KFLOW_DB", ".kflow/runs.db"))
