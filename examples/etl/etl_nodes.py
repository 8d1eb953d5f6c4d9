"""Node implementations for examples/etl/etl.kflow (both pure: no I/O)."""

from __future__ import annotations

REGIONS = {"north", "south", "east", "west"}
COLUMNS = ("order_id", "day", "region", "sku", "qty", "unit_price")


def check_row(row):
    order_id = row.get("order_id") or "?"
    missing = [c for c in COLUMNS if not row.get(c, "").strip()]
    if missing:
        return {"ok": False, "reason": f"missing {', '.join(missing)}", "order_id": order_id}
    if row["region"] not in REGIONS:
        return {"ok": False, "reason": f"unknown region {row['region']!r}", "order_id": order_id}
    try:
        qty = int(row["qty"])
        price = float(row["unit_price"])
    except ValueError as exc:
        return {"ok": False, "reason": f"not a number: {exc}", "order_id": order_id}
    if qty <= 0:
        return {"ok": False, "reason": f"quantity {qty} is not positive", "order_id": order_id}
    if price < 0:
        return {"ok": False, "reason": f"negative price {price}", "order_id": order_id}
    return {"ok": True, "reason": "", "order_id": order_id}


def region_totals(rows):
    regions = [
        {"region": str(r["region"]), "orders": int(r["orders"]), "units": int(r["units"]),
         "revenue": float(r["revenue"])}
        for r in rows
    ]
    return {"regions": regions, "revenue": round(sum(r["revenue"] for r in regions), 2)}
