"""Node implementations for examples/approval/approval.kflow.

The approver's inbox and the payroll system are simulated: requests and payments are
appended to JSON-lines files in $KFLOW_EXAMPLE_DATA (default: ./.data beside this file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _append(name: str, record: dict) -> None:
    folder = Path(os.environ.get("KFLOW_EXAMPLE_DATA") or Path(__file__).parent / ".data")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def request_approval(expense, approver, *, ctx):
    ticket = f"APR-{expense['id']}"
    link = f"kflow signal {ctx.run_id} approval --data '{{\"approved\": true, \"approver\": \"{approver}\"}}'"
    _append("inbox.jsonl", {"to": approver, "ticket": ticket, "amount": expense["amount"],
                            "description": expense["description"], "run_id": ctx.run_id})
    return {"ticket": ticket, "link": link}


def reimburse(expense_id, employee, amount, currency, *, ctx):
    payment_id = f"PAY-{expense_id}"
    _append("payroll.jsonl", {"payment_id": payment_id, "employee": employee,
                              "amount": amount, "currency": currency,
                              "idempotency_key": ctx.idempotency_key})
    ctx.log(f"paid {amount:.2f} {currency} to {employee}")
    return {"payment_id": payment_id}


def notify_employee(employee, message, *, ctx):
    _append("inbox.jsonl", {"to": employee, "message": message})
    return None
