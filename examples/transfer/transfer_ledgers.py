"""Two ledger services as 2PC participants for examples/transfer/transfer.kflow.

Each ledger is a SQLite file in $KFLOW_EXAMPLE_DATA (default: ./.data beside this file).
`prepare` records a *hold* keyed by the step's idempotency key and checks the balance
(counting other holds); `commit` books the hold; `abort` drops it. Both are idempotent,
so the runtime may call them again after a crash.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path


class Ledger:
    name = "ledger"
    seed: dict[str, float] = {}
    sign = -1  # -1 debits, +1 credits

    def __init__(self) -> None:
        folder = Path(os.environ.get("KFLOW_EXAMPLE_DATA") or Path(__file__).parent / ".data")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.name}.db"
        with closing(self._db()) as db, db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS holds (key TEXT PRIMARY KEY, account TEXT NOT NULL,
                                                  delta REAL NOT NULL, reference TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS postings (key TEXT PRIMARY KEY, account TEXT NOT NULL,
                                                     delta REAL NOT NULL, reference TEXT NOT NULL);
                """
            )
            db.executemany("INSERT OR IGNORE INTO accounts VALUES (?, ?)", self.seed.items())

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level="IMMEDIATE")

    # --- the participant protocol -------------------------------------------------

    def prepare(self, account, amount, reference, *, ctx):
        delta = self.sign * float(amount)
        with closing(self._db()) as db, db:
            row = db.execute("SELECT balance FROM accounts WHERE id = ?", (account,)).fetchone()
            if row is None:
                raise LookupError(f"{self.name}: no account {account!r}")
            held = db.execute(
                "SELECT coalesce(sum(delta), 0) FROM holds WHERE account = ? AND key != ?",
                (account, ctx.idempotency_key),
            ).fetchone()[0]
            available = row[0] + held
            if available + delta < 0:
                raise ValueError(
                    f"{self.name}: insufficient funds in {account}: {available:.2f} available, "
                    f"{amount:.2f} needed"
                )
            db.execute("INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?)",
                       (ctx.idempotency_key, account, delta, reference))
        ctx.log(f"{self.name}: prepared {delta:+.2f} on {account} ({reference})")
        return {"balance": round(available + delta, 2)}

    def commit(self, *, ctx):
        with closing(self._db()) as db, db:
            hold = db.execute("SELECT account, delta, reference FROM holds WHERE key = ?",
                              (ctx.idempotency_key,)).fetchone()
            if hold is None:
                return  # already committed (or never prepared): nothing to do
            account, delta, reference = hold
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (delta, account))
            db.execute("INSERT OR IGNORE INTO postings VALUES (?, ?, ?, ?)",
                       (ctx.idempotency_key, account, delta, reference))
            db.execute("DELETE FROM holds WHERE key = ?", (ctx.idempotency_key,))
        ctx.log(f"{self.name}: committed {delta:+.2f} on {account}")

    def abort(self, *, ctx):
        with closing(self._db()) as db, db:
            db.execute("DELETE FROM holds WHERE key = ?", (ctx.idempotency_key,))
        ctx.log(f"{self.name}: aborted")

    # --- for the README and tests ------------------------------------------------

    def balance(self, account: str) -> float:
        with closing(self._db()) as db:
            row = db.execute("SELECT balance FROM accounts WHERE id = ?", (account,)).fetchone()
        return row[0] if row else 0.0


class CheckingLedger(Ledger):
    name = "checking"
    seed = {"alice": 500.0, "bob": 120.0}
    sign = -1


class SavingsLedger(Ledger):
    name = "savings"
    seed = {"alice-savings": 1000.0, "bob-savings": 0.0}
    sign = +1
