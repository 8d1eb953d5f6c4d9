"""Node implementations for examples/aggregate/aggregate.kflow."""

from __future__ import annotations


def summarise(customer_id, profile, orders, tickets):
    lines = orders.get("orders", [])
    value = round(sum(o["total"] for o in lines if o["status"] != "cancelled"), 2)
    tier = "gold" if value >= 1000 else "silver" if value >= 250 else "bronze"
    open_tickets = tickets.get("tickets", [])
    return {
        "customer_id": customer_id,
        "name": profile["name"],
        "email": profile["email"],
        "tier": tier,
        "orders": len(lines),
        "open_orders": sum(1 for o in lines if o["status"] in ("paid", "packed")),
        "lifetime_value": value,
        "open_tickets": len(open_tickets),
        "last_ticket": open_tickets[-1]["subject"] if open_tickets else None,
    }
