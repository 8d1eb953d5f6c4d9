"""`kflow dis`: bytecode listings in the spirit of CPython's ``dis``.

Columns: source line, offset, opcode, operand, and a readable operand. Nested code
objects (loop bodies, try bodies, handlers, transactions) are listed after their parent,
as ``dis`` lists nested functions. Placed journal flushes show as ``flush`` on the step
that needs one, and STEP lines say which slots they wait for and which effects they have.
"""

from __future__ import annotations

from . import bytecode as B


def _effects(effs) -> str:
    if not effs:
        return "pure"
    parts = sorted(f"{e}:{r}" if r else e for e, r in effs)
    return ",".join(parts)


def _slot(names: list[str], s: int | None) -> str:
    if s is None:
        return "_"
    name = names[s] if 0 <= s < len(names) else "?"
    return f"{s}({name})"


def _describe(ins: B.Instr, names: list[str]) -> tuple[str, str]:
    a = ins.arg
    op = ins.op
    if op == B.Op.STEP:
        bits = [f"{a.kind} {a.label}", f"key={a.key!r}", f"effects={_effects(a.effects)}"]
        if a.reads:
            bits.append("after=" + ",".join(_slot(names, s) for s in sorted(a.reads)))
        if a.when is not None:
            bits.append(f"when={a.when.source}")
        if a.fallback is not None:
            bits.append(f"else={a.fallback.label}")
        if a.retry is not None:
            bits.append(f"retry={a.retry.attempts}")
        if a.timeout_ms is not None:
            bits.append(f"timeout={a.timeout_ms}ms")
        if a.flush_before:
            bits.append("flush")
        args = ", ".join(f"{k}={c.source}" for k, c in a.args)
        return _slot(names, a.slot), f"({args})  " + " ".join(bits)
    if op == B.Op.LET:
        slot, ec = a
        return _slot(names, slot), ec.source
    if op == B.Op.AWAIT:
        return ",".join(str(s) for s in a), ""
    if op in (B.Op.BARRIER,):
        return a or "all", ""
    if op == B.Op.FLUSH:
        return "", f"({a})"
    if op == B.Op.JUMP_IF_NOT:
        return str(a[1]), f"if not {a[0].source}"
    if op == B.Op.JUMP:
        return str(a), f"to {a}"
    if op == B.Op.FOR:
        return _slot(names, a.slot), (f"{a.key}: for {_slot(names, a.var_slot)} in "
                                      f"{a.iterable.source} concurrency={a.concurrency}"
                                      + (" yields" if a.yields else ""))
    if op == B.Op.YIELD:
        return "", a.source
    if op == B.Op.PARALLEL:
        return "", f"<code {a.name}>"
    if op == B.Op.TRY:
        hs = "; ".join(("catch " + (",".join(h.kinds) or "*")
                        + (f" as {_slot(names, h.slot)}" if h.slot is not None else ""))
                       for h in a.handlers)
        return "", hs
    if op == B.Op.TX:
        return a.key, f"{a.pattern} — {a.reason}"
    if op == B.Op.SLEEP:
        return a[1], a[0].source
    if op == B.Op.WAIT:
        slot, signal, timeout, key, ptype = a
        t = f" timeout {timeout.source}" if timeout is not None else ""
        return _slot(names, slot), f"{signal!r}{t} payload={ptype.show()} key={key!r}"
    if op == B.Op.EMIT:
        name, value, key = a
        return repr(name), value.source if value is not None else ""
    if op == B.Op.RETURN:
        return "", a.source if a is not None else "null"
    if op == B.Op.FAIL:
        return a[0], a[1].source
    return repr(a), ""


def disassemble_code(code: B.Code, names: list[str], with_lines: bool = True,
                     title: str | None = None) -> list[str]:
    out = [f"Disassembly of <code {title or code.name}> ({code.kind}):"]
    last_line = None
    for i, ins in enumerate(code.instrs):
        line = ""
        if with_lines and ins.line != last_line:
            line = str(ins.line)
            last_line = ins.line
        operand, readable = _describe(ins, names)
        row = f"{line:>5}  {i:>4}  {ins.op.name:<12} {operand:<14} {readable}"
        out.append(row.rstrip())
    for sub in code.children():
        out.append("")
        out.extend(disassemble_code(sub, names, with_lines))
    return out


def disassemble_workflow(wf: B.RuntimeWorkflow, with_lines: bool = True) -> str:
    head = [f"workflow {wf.qualname}  ({wf.file}:{wf.line})" if with_lines
            else f"workflow {wf.qualname}",
            "  params: " + ", ".join(f"{p.name}: {p.type.show()}" for p in wf.params),
            f"  result: {wf.result.show()}",
            "  slots:  " + ", ".join(f"{i}={n}" for i, n in enumerate(wf.slot_names)),
            f"  effects: {_effects(wf.effects)}", ""]
    return "\n".join(head + disassemble_code(wf.code, wf.slot_names, with_lines))


def disassemble_program(prog: B.CompiledProgram, with_lines: bool = True,
                        workflow: str | None = None) -> str:
    parts = []
    for q in sorted(prog.workflows):
        wf = prog.workflows[q]
        if workflow and workflow not in (wf.name, wf.qualname):
            continue
        parts.append(disassemble_workflow(wf, with_lines))
    if with_lines and prog.explanations and not workflow:
        parts.append("transactions:\n" + "\n".join(f"  {e}" for e in prog.explanations))
    if not with_lines:
        # node semantics are part of the program too (impl, effects, retries)
        for q in sorted(prog.nodes):
            n = prog.nodes[q]
            parts.append(f"node {q} impl={n.impl} effect={n.effect}:{n.resource} "
                         f"retry={n.retry} timeout={n.timeout_ms} comp={n.compensate} "
                         f"tx={n.transactional} params="
                         + ",".join(f"{p.name}:{p.type.show()}" for p in n.params)
                         + f" -> {n.result.show()}")
    return "\n\n".join(parts) + "\n"
