"""Node implementations for examples/orders/orders.kflow.

The "warehouse", "payment processor", "carrier" and "mail server" are simulated in a
small SQLite file, so the example runs anywhere and a resumed run sees what an earlier
process did. The file lives in $KFLOW_EXAMPLE_DATA (default: ./.data beside this file).
Ids are derived from the order id, so a run's output is reproducible.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

STOCK = {"KB-101": 40, "MS-202": 25, "HD-303": 3, "MN-404": 0}
CARRIERS = {"DE": "DHL", "FR": "Colissimo", "NL": "PostNL", "GB": "Royal Mail", "US": "UPS"}
COUPONS = {"WELCOME10", "VIP25"}


def _db() -> sqlite3.Connection:
    folder = Path(os.environ.get("KFLOW_EXAMPLE_DATA") or Path(__file__).parent / ".data")
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "orders.db", timeout=30)
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS reservations (id TEXT, sku TEXT, qty INTEGER, PRIMARY KEY (id, sku));
        CREATE TABLE IF NOT EXISTS charges (id TEXT PRIMARY KEY, amount REAL, refunded INTEGER DEFAULT 0);
        CREATE TABLE IF NOT EXISTS shipments (order_id TEXT PRIMARY KEY, tracking TEXT, carrier TEXT);
        CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, recipient TEXT, subject TEXT);
        """
    )
    conn.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?)", STOCK.items())
    conn.commit()
    return conn


def validate(order):
    """Pure: the same order always gets the same answer."""
    if not order["items"]:
        return {"ok": False, "reason": "the order has no items"}
    for item in order["items"]:
        if item["qty"] < 1:
            return {"ok": False, "reason": f"{item['sku']}: quantity must be at least 1"}
        if item["unit_price"] < 0:
            return {"ok": False, "reason": f"{item['sku']}: negative price"}
    if "@" not in order["email"]:
        return {"ok": False, "reason": f"{order['email']!r} is not an e-mail address"}
    if order.get("coupon") and order["coupon"] not in COUPONS:
        return {"ok": False, "reason": f"unknown coupon {order['coupon']}"}
    return {"ok": True, "reason": ""}


def reserve_stock(order_id, items, *, ctx):
    reservation = f"res-{order_id}"
    with closing(_db()) as db, db:
        if db.execute("SELECT 1 FROM reservations WHERE id = ?", (reservation,)).fetchone():
            return {"reservation_id": reservation}  # a retried or resumed step
        for item in items:
            row = db.execute("SELECT on_hand FROM stock WHERE sku = ?", (item["sku"],)).fetchone()
            if row is None or row[0] < item["qty"]:
                have = row[0] if row else 0
                raise RuntimeError(f"out of stock: {item['sku']} (want {item['qty']}, have {have})")
            db.execute("UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?", (item["qty"], item["sku"]))
            db.execute("INSERT INTO reservations VALUES (?, ?, ?)", (reservation, item["sku"], item["qty"]))
    ctx.log(f"reserved {len(items)} line(s) as {reservation}")
    return {"reservation_id": reservation}


def release_stock(reservation_id, *, ctx):
    with closing(_db()) as db, db:
        for sku, qty in db.execute("SELECT sku, qty FROM reservations WHERE id = ?", (reservation_id,)).fetchall():
            db.execute("UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?", (qty, sku))
        db.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
    ctx.log(f"released {reservation_id}")
    return None


def charge(order_id, amount, currency, *, ctx):
    if amount > 5000:
        raise RuntimeError(f"card declined: {amount:.2f} {currency} is over the card limit")
    charge_id = f"ch_{order_id}"
    with closing(_db()) as db, db:
        db.execute("INSERT OR IGNORE INTO charges (id, amount) VALUES (?, ?)", (charge_id, amount))
    ctx.log(f"charged {amount:.2f} {currency} as {charge_id} (key {ctx.idempotency_key})")
    return {"charge_id": charge_id}


def refund(charge_id, amount, currency, *, ctx):
    with closing(_db()) as db, db:
        db.execute("UPDATE charges SET refunded = 1 WHERE id = ?", (charge_id,))
    ctx.log(f"refunded {amount:.2f} {currency} on {charge_id}")
    return {"refund_id": f"re_{charge_id[3:]}"}


def book_shipment(order_id, country, items, *, ctx):
    carrier = CARRIERS.get(country)
    if carrier is None:
        raise RuntimeError(f"no carrier delivers to {country!r}")
    parcels = sum(item["qty"] for item in items)
    tracking = f"{carrier[:3].upper()}-{order_id}-{parcels}"
    with closing(_db()) as db, db:
        db.execute("INSERT OR REPLACE INTO shipments VALUES (?, ?, ?)", (order_id, tracking, carrier))
    return {"tracking": tracking, "carrier": carrier}


def send_mail(to, subject, body, *, ctx):
    message_id = f"<{ctx.idempotency_key}@mail.example>"
    with closing(_db()) as db, db:
        db.execute("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)", (message_id, to, subject))
    ctx.log(f"mail to {to}: {subject}")
    return {"message_id": message_id}
