"""Breaking long lines of generated Python the way a formatter would (right-hand split).

A line longer than the limit is split at the bracket pair that ends it: the contents go
one item per line with a trailing comma, and each new line is split again if needed.
Subscripts are never split (``x["a",]`` would be a tuple index), nor are strings.
"""

from __future__ import annotations

WIDTH = 88
_OPEN = {"(": ")", "[": "]", "{": "}"}


def wrap(text: str, width: int = WIDTH) -> str:
    out: list[str] = []
    in_doc = False
    depth = 0  # brackets left open by the lines before
    for line in text.split("\n"):
        stripped = line.strip()
        if in_doc:
            out.append(line)
            if '"""' in stripped:
                in_doc = False
            continue
        if stripped.startswith('"""'):
            out.append(line)
            if stripped.count('"""') == 1:
                in_doc = True
            continue
        out.extend(wrap_line(line, width, nested=depth > 0))
        if not stripped.startswith("#"):
            for _, ch, _ in _scan(line):
                if ch in _OPEN:
                    depth += 1
                elif ch in ")]}":
                    depth = max(depth - 1, 0)
    return "\n".join(out)


def wrap_line(line: str, width: int = WIDTH, nested: bool = False) -> list[str]:
    """Split ``line``; ``nested`` when it is inside brackets (any break is legal)."""
    if len(line) <= width:
        return [line]
    if line.lstrip().startswith("#"):
        return _wrap_comment(line, width)
    spans = _brackets(line)
    if spans is None:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    # the first top-level bracket group after which only closing punctuation follows
    candidates = [(st, en) for st, en in spans if line[en + 1:].strip() in ("", ":", ",")]
    if nested:
        candidates += sorted((sp for sp in spans if sp not in candidates),
                             key=lambda sp: sp[0] - sp[1])
    for start, end in candidates:
        line[end + 1:]
        opener = line[start]
        if opener == "[" and start > 0 and (line[start - 1].isalnum()
                                            or line[start - 1] in "_)]\"'"):
            continue  # a subscript
        body = line[start + 1:end]
        items = _split_top(body)
        if not items or (len(items) == 1 and len(body.strip()) < 8):
            continue
        generator = len(items) == 1 and _has_top_for(items[0])
        head = line[: start + 1]
        inner = indent + "    "
        lines = [head]
        for item in items:
            comma = "" if generator else ","
            lines.extend(wrap_line(inner + item.strip() + comma, width, nested=True))
        lines.append(indent + line[end:].strip())
        return lines
    return _split_conditional(line, width) or [line]


def _split_conditional(line: str, width: int) -> list[str] | None:
    """``x = a if c else b`` (or ``return ...``) too long: parenthesize, one part a line."""
    indent = line[: len(line) - len(line.lstrip())]
    body = line.lstrip()
    head = ""
    if body.startswith("return "):
        head = "return "
    else:
        eq = next((i for i, ch, d in _scan(body) if ch == "=" and d == 0
                   and body[i - 1:i] == " " and body[i + 1:i + 2] == " "), None)
        if eq is None:
            return None
        head = body[: eq + 2]
    expr = body[len(head):]
    if expr.endswith((",", ":")):
        return None
    mask = ["\0"] * len(expr)
    for i, ch, d in _scan(expr):
        if d == 0 and ch not in ")]}":
            mask[i] = ch
    flat = "".join(mask)
    i_if = flat.find(" if ")
    i_else = flat.find(" else ", i_if + 1)
    if i_if < 0 or i_else < 0 or flat.find(" if ", i_if + 1) not in (-1,) \
            and flat.find(" if ", i_if + 1) < i_else:
        return None
    inner = indent + "    "
    out = [f"{indent}{head}("]
    out += wrap_line(inner + expr[:i_if].strip(), width, nested=True)
    out += wrap_line(inner + "if " + expr[i_if + 4:i_else].strip(), width, nested=True)
    out += wrap_line(inner + "else " + expr[i_else + 6:].strip(), width, nested=True)
    out.append(f"{indent})")
    return out


def _wrap_comment(line: str, width: int) -> list[str]:
    import textwrap

    indent = line[: len(line) - len(line.lstrip())]
    stripped = line.lstrip()
    marker = "#: " if stripped.startswith("#:") else "# "
    body = stripped[len(marker.rstrip()):].strip()
    return textwrap.wrap(body, width=width, initial_indent=indent + marker,
                         subsequent_indent=indent + marker, break_long_words=False,
                         break_on_hyphens=False) or [line]


def _scan(line: str):
    """Yield (index, char, depth_before) for characters outside string literals."""
    i, n = 0, len(line)
    depth = 0
    while i < n:
        ch = line[i]
        if ch in "\"'":
            quote = ch
            i += 1
            while i < n and line[i] != quote:
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        yield i, ch, depth
        if ch in _OPEN:
            depth += 1
        elif ch in ")]}":
            depth -= 1
        i += 1


def _brackets(line: str) -> list[tuple[int, int]] | None:
    """Top-level bracket pairs (start, end), in order; None when the line has a comment."""
    spans = []
    stack: list[int] = []
    for i, ch, _ in _scan(line):
        if ch == "#":
            return None
        if ch in _OPEN:
            stack.append(i)
        elif ch in ")]}":
            if not stack:
                return None
            s = stack.pop()
            if not stack:
                spans.append((s, i))
    return spans


def _split_top(body: str) -> list[str]:
    items, last = [], 0
    for i, ch, d in _scan(body):
        if ch == "," and d == 0:
            items.append(body[last:i])
            last = i + 1
    rest = body[last:]
    if rest.strip():
        items.append(rest)
    return [x for x in items if x.strip()]


def _has_top_for(item: str) -> bool:
    text = "".join(ch if d == 0 else " " for _, ch, d in _scan(item))
    return " for " in f" {text} "
