"""kflow bytecode: the opcode table, code objects, and the on-disk cache.

A workflow compiles to a :class:`Code` — a flat list of :class:`Instr` with jumps for
``if``, and nested code objects for loop bodies, ``try`` bodies, handlers and
transactions. Slot 0 of every frame is the frame itself; bindings live in slots 1..n.

Step calls are asynchronous: ``STEP`` *starts* a step (it runs as soon as the slots it
reads are resolved and every earlier conflicting step has finished) and leaves a pending
value in its slot; whoever reads the slot later awaits it. That is how independent steps
overlap without any task code in the user's program. ``BARRIER`` and ``AWAIT`` are the
places where the instruction stream itself waits.

:data:`OPCODES` is the single source of truth for names, numbers and meanings; it is
rendered into docs/bytecode.md and used by the disassembler.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .exprs import ExprCode
from .program import RetryPolicy
from .types import Type

#: (name, operand, meaning) — the order gives the opcode numbers.
OPCODES: tuple[tuple[str, str, str], ...] = (
    ("STEP", "StepSpec", "start a node or workflow call into a slot; it runs when the "
                         "slots it reads are resolved and earlier conflicting steps are done"),
    ("LET", "slot, expr", "bind a pure value (deferred while a slot it reads is pending)"),
    ("AWAIT", "slots", "wait until these slots hold values"),
    ("BARRIER", "kind", "wait for every step in flight (`all`, before wait/sleep/emit/"
                        "return/fail), or only for steps with effects (`effects`, around "
                        "if/for/try/transaction: effects never cross control flow, §6)"),
    ("FLUSH", "reason", "group-commit the journal (a checkpoint placed by the compiler)"),
    ("JUMP_IF_NOT", "expr, target", "evaluate a condition; jump when false"),
    ("JUMP", "target", "continue at target"),
    ("FOR", "ForSpec", "run a body code object per item (up to `concurrency` at once); "
                       "collect yields into a list in iteration order"),
    ("YIELD", "expr", "append a value to the current iteration's result"),
    ("PARALLEL", "code", "run a block whose statements ignore effect conflicts among "
                         "themselves; ends when all of them have"),
    ("TRY", "TrySpec", "run a body; on a step failure run the first matching handler"),
    ("TX", "TxSpec", "run a transaction body as a saga or two-phase commit"),
    ("SLEEP", "expr, key", "durable timer: park the run until the wake time"),
    ("WAIT", "slot, signal, timeout, key", "durable wait for a signal; null on timeout"),
    ("EMIT", "name, expr, key", "append an event to the run's stream"),
    ("RETURN", "expr", "finish the run (or sub-workflow) with a value"),
    ("FAIL", "kind, expr", "finish with an error of the given kind"),
)

Op = IntEnum("Op", [name for name, _, _ in OPCODES], start=1)


@dataclass
class Instr:
    op: Op
    arg: Any
    line: int
    col: int = 0


@dataclass
class StepSpec:
    slot: int
    key: str  # static step key; loop frames prefix it (`lines[3].p`)
    kind: str  # "node" | "workflow"
    target: str  # qualname
    label: str  # the name as written (for errors and the disassembler)
    args: list[tuple[str, ExprCode]]
    reads: frozenset[int]
    when: ExprCode | None = None
    fallback: "StepSpec | None" = None
    retry: RetryPolicy | None = None  # statement override
    timeout_ms: int | None = None  # statement override
    flush_before: bool = False  # set by the checkpoint pass
    effects: frozenset[tuple[str, str | None]] = frozenset()  # (effect, resource)
    line: int = 0


@dataclass
class ForSpec:
    slot: int | None  # where the yielded list goes (None: a loop statement)
    var_slot: int
    iterable: ExprCode
    body: "Code"
    concurrency: int
    key: str  # the key base: `lines` in `lines[3].p`
    yields: bool


@dataclass
class Handler:
    kinds: tuple[str, ...]  # empty: any
    slot: int | None  # binding for `as e`
    body: "Code"


@dataclass
class TrySpec:
    body: "Code"
    handlers: list[Handler]


@dataclass
class TxSpec:
    pattern: str  # "saga" | "2pc"
    reason: str
    body: "Code"
    key: str
    line: int


@dataclass
class Code:
    name: str
    instrs: list[Instr] = field(default_factory=list)
    kind: str = "workflow"  # workflow | loop | try | handler | tx | parallel

    def children(self) -> list["Code"]:
        out = []
        for ins in self.instrs:
            a = ins.arg
            if isinstance(a, ForSpec):
                out.append(a.body)
            elif isinstance(a, TrySpec):
                out.append(a.body)
                out.extend(h.body for h in a.handlers)
            elif isinstance(a, TxSpec):
                out.append(a.body)
            elif isinstance(a, Code):
                out.append(a)
        return out


@dataclass
class RuntimeParam:
    name: str
    type: Type
    default: ExprCode | None
    has_default: bool


@dataclass
class RuntimeNode:
    qualname: str
    name: str
    impl: str | None
    effect: str
    resource: str | None
    params: list[RuntimeParam]
    result: Type
    retry: RetryPolicy | None
    timeout_ms: int | None
    idempotent: bool
    transactional: str | None
    compensate: str | None  # qualname of the compensation node
    circuit_breaker: tuple[int, int] | None
    bulkhead: int | None
    line: int
    file: str


@dataclass
class RuntimeWorkflow:
    qualname: str
    name: str
    params: list[RuntimeParam]
    result: Type
    code: Code
    nslots: int
    slot_names: list[str]
    effects: frozenset[tuple[str, str | None]]
    file: str
    line: int
    doc: str | None = None
    #: every step key the code can produce, without loop indices (for --allow-changed)
    step_keys: frozenset[str] = frozenset()
    #: signal name -> payload type, for `kflow signal` validation
    waits: dict[str, Type] = field(default_factory=dict)


@dataclass
class CompiledProgram:
    path: str  # absolute path of the entry file
    module_dirs: list[str]  # folders to put on sys.path for @impl imports
    entry_workflows: list[str]  # qualnames declared in the entry file, in order
    workflows: dict[str, RuntimeWorkflow]
    nodes: dict[str, RuntimeNode]
    sources: dict[str, str]  # path -> sha256 of the text, for the cache
    explanations: list[str] = field(default_factory=list)
    program_hash: str = ""

    def find_workflow(self, name: str) -> RuntimeWorkflow | None:
        for q in self.entry_workflows:
            wf = self.workflows[q]
            if wf.name == name or q == name:
                return wf
        for wf in self.workflows.values():
            if wf.name == name or wf.qualname == name:
                return wf
        return None


FORMAT_VERSION = 1


def program_hash(prog: CompiledProgram) -> str:
    """§7 rule 4: the hash of what the program *does* — its disassembly without lines."""
    from .dis import disassemble_program

    text = disassemble_program(prog, with_lines=False)
    # defaults and record-field defaults are behaviour too
    parts = [text]
    for q in sorted(prog.workflows):
        wf = prog.workflows[q]
        parts.append(q + repr([(p.name, repr(p.type), p.default.source if p.default else None)
                               for p in wf.params]) + repr(wf.result))
    for q in sorted(prog.nodes):
        n = prog.nodes[q]
        parts.append(q + repr([(p.name, repr(p.type), p.default.source if p.default else None)
                               for p in n.params]) + repr(n.result))
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def dumps(prog: CompiledProgram) -> bytes:
    return pickle.dumps((FORMAT_VERSION, prog), protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> CompiledProgram | None:
    try:
        version, prog = pickle.loads(data)  # noqa: S301 - our own cache files
    except Exception:
        return None
    if version != FORMAT_VERSION:
        return None
    return prog
