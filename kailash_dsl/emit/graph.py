"""`kflow graph`: the IR drawn as Mermaid or Graphviz dot.

Nodes are statements (steps are boxes, control flow rounded), solid edges are data
dependencies, dashed edges are effect order (§6); a step that needs a journal flush
before it is marked with a ⏺ checkpoint. Independent steps visibly fan out.
"""

from __future__ import annotations

from ..compiler.ir import IR, IRNode, Region


def _label(n: IRNode) -> str:
    if n.kind == "step":
        eff = ",".join(sorted(f"{e}:{r}" if r else e for e, r in n.effects)) or "pure"
        text = f"{n.key} = {n.target.name} [{eff}]"
    else:
        text = f"{n.kind} {n.key}" if n.kind not in ("return", "fail") else n.kind
    if n.flush_before:
        text = "⏺ " + text
    if n.note and n.kind == "tx":
        text += f" ({n.note.split(':')[0]})"
    return text.replace('"', "'")


def _walk(region: Region, out: list, edges: list, prefix: str) -> None:
    for n in region.nodes:
        if n.dead:
            continue
        out.append((f"{prefix}n{n.id}", _label(n), n.kind, region.kind))
        for sub in n.regions:
            _walk(sub, out, edges, prefix)
            if sub.nodes:
                edges.append((f"{prefix}n{n.id}", f"{prefix}n{sub.nodes[0].id}", "contains"))
    for a, b, data in region.graph.edges(data=True):
        edges.append((f"{prefix}n{a}", f"{prefix}n{b}", data.get("kind", "data")))


def render_graph(ir: IR, fmt: str = "mermaid", workflow: str | None = None) -> str:
    lines: list[str] = []
    if fmt == "mermaid":
        lines.append("flowchart TD")
    else:
        lines.append("digraph kflow {")
        lines.append("  rankdir=TB; node [fontname=Helvetica, fontsize=10];")
    for i, (q, wf) in enumerate(sorted(ir.workflows.items())):
        if workflow and workflow not in (wf.info.name, q):
            continue
        nodes: list = []
        edges: list = []
        prefix = f"w{i}_"
        _walk(wf.body, nodes, edges, prefix)
        if fmt == "mermaid":
            lines.append(f"  subgraph {prefix}wf[\"workflow {wf.info.name}\"]")
            for nid, label, kind, _ in nodes:
                shape = ('["', '"]') if kind == "step" else ('("', '")')
                lines.append(f"    {nid}{shape[0]}{label}{shape[1]}")
            lines.append("  end")
            for a, b, kind in edges:
                arrow = {"data": "-->", "effect": "-.->", "contains": "-->|body|"}[kind]
                lines.append(f"  {a} {arrow} {b}")
        else:
            lines.append(f"  subgraph cluster_{i} {{ label=\"workflow {wf.info.name}\";")
            for nid, label, kind, _ in nodes:
                shape = "box" if kind == "step" else "ellipse"
                lines.append(f"    {nid} [label=\"{label}\", shape={shape}];")
            lines.append("  }")
            for a, b, kind in edges:
                style = {"data": "solid", "effect": "dashed", "contains": "dotted"}[kind]
                lines.append(f"  {a} -> {b} [style={style}];")
    if fmt != "mermaid":
        lines.append("}")
    return "\n".join(lines) + "\n"
