"""The example's one own node: an append-only audit log beside the program."""

import os
from pathlib import Path


def record(line, *, ctx):
    path = Path(os.environ.get("KFLOW_EXAMPLE_DATA", ctx.base_dir)) / "audit.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{ctx.idempotency_key} {line}\n")
    return None
