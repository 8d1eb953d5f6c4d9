"""Optimisation passes: each one module, one public function ``IR -> IR``.

They run in the order of :data:`PASSES`; any can be switched off by name
(``kflow dis --no-pass fold_constants``, or ``KFLOW_DISABLE_PASSES=a,b``) to debug it
alone, as sqlglot's optimizer rules can.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from ..ir import IR
from .dead_pure import eliminate_dead_pure
from .checkpoints import place_checkpoints
from .fold import fold_constants
from .schedule import schedule_effects
from .transactions import lower_transactions

PASSES: tuple[tuple[str, Callable[[IR], IR]], ...] = (
    ("fold_constants", fold_constants),
    ("eliminate_dead_pure", eliminate_dead_pure),
    ("schedule_effects", schedule_effects),
    ("lower_transactions", lower_transactions),
    ("place_checkpoints", place_checkpoints),
)


def run_passes(ir: IR, disabled: Iterable[str] = ()) -> IR:
    off = set(disabled) | {p for p in os.environ.get("KFLOW_DISABLE_PASSES", "").split(",") if p}
    for name, fn in PASSES:
        if name in off:
            continue
        ir = fn(ir)
        ir.applied.append(name)
    return ir
