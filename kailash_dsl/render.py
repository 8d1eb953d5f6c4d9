"""Rendering diagnostics for people and machines: human, json, github, sarif.

Kept out of the compiler so `kailash_dsl.check` never imports Rich. Only the human
renderer touches Rich, and only when colour is asked for (a TTY): the json, github and
sarif paths import nothing beyond the standard library.

Every renderer takes the diagnostics in the order the checker produced them and returns
one string (no trailing newline); the CLI prints it.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import __version__
from .diagnostics import CODES, Diagnostic, to_json_dict
from .grammar.ast import Span

FORMATS = ("human", "json", "github", "sarif")

#: Where a SARIF consumer sends people to read about the tool.
INFORMATION_URI = "https://pypi.org/project/kailash-dsl/"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"

Explanation = tuple[Span, str]


# ============================================================================= helpers


def display_path(file: str, cwd: str | None = None) -> str:
    """``file`` relative to the working directory when it lies below it, else unchanged."""
    if not file or file.startswith("<"):
        return file
    cwd = cwd or os.getcwd()
    try:
        absolute = os.path.abspath(file)
        rel = os.path.relpath(absolute, cwd)
    except ValueError:  # another drive on Windows
        return file
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return file
    return rel


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _adds_information(message: str, title: str) -> bool:
    norm = lambda s: " ".join(s.lower().strip().rstrip(".").split())
    return bool(message.strip()) and norm(message) != norm(title)


def _counts(diags: Sequence[Diagnostic]) -> tuple[int, int]:
    errors = sum(1 for d in diags if d.is_error)
    return errors, len(diags) - errors


def summary_line(diags: Sequence[Diagnostic], files: int) -> str:
    """``error: 2 errors, 1 warning in 3 files`` or ``All checks passed (3 files)``."""
    errors, warnings = _counts(diags)
    in_files = _plural(files, "file")
    if errors:
        parts = [_plural(errors, "error")]
        if warnings:
            parts.append(_plural(warnings, "warning"))
        return f"error: {', '.join(parts)} in {in_files}"
    if warnings:
        return f"All checks passed with {_plural(warnings, 'warning')} ({in_files})"
    return f"All checks passed ({in_files})"


# ============================================================================= human

# A rendered line is a list of (text, style) segments; style None is unstyled. Plain
# output joins the texts; colour output hands the segments to Rich.
Seg = tuple[str, "str | None"]

_SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "explain": "bold cyan"}
_GUTTER = "bold blue"
_SECONDARY = "bold blue"
_TAB = 4


@dataclass
class _Ann:
    line: int
    col: int          # 1-based character column
    end_line: int
    end_col: int      # exclusive
    primary: bool
    message: str
    style: str


class _SourceCache:
    def __init__(self, sources: dict[str, str] | None = None) -> None:
        self._lines: dict[str, list[str] | None] = {}
        self._sources = sources or {}

    def lines(self, file: str) -> list[str] | None:
        if file not in self._lines:
            text = self._sources.get(file)
            if text is None and file and not file.startswith("<"):
                try:
                    with open(file, "rb") as fh:
                        text = fh.read().decode("utf-8", errors="replace")
                except OSError:
                    text = None
            # Lines as the parser counts them: split on "\n" only.
            self._lines[file] = None if text is None else [
                ln.removesuffix("\r") for ln in text.split("\n")]
        return self._lines[file]


def _char_width(ch: str) -> int:
    if ch == "\t":
        return _TAB
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _clean(line: str) -> str:
    """The line as shown: tabs expanded, control characters made visible and harmless."""
    out = []
    for ch in line:
        if ch == "\t":
            out.append(" " * _TAB)
        elif ch < " " or ch == "\x7f" or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append("\N{REPLACEMENT CHARACTER}")
        elif unicodedata.combining(ch):
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out)


def _dcol(line: str, col: int) -> int:
    """Display column (1-based) of character column ``col`` in ``line``."""
    col = max(col, 1)
    width = 0
    for ch in line[: col - 1]:
        width += _char_width(ch)
    extra = max(0, col - 1 - len(line))
    return width + extra + 1


def _first_nonblank(line: str) -> int:
    stripped = len(line) - len(line.lstrip())
    return stripped + 1


class _Canvas:
    """One underline row: characters placed at display columns, each with a style."""

    def __init__(self) -> None:
        self.cells: dict[int, tuple[str, str | None]] = {}

    def put(self, col: int, ch: str, style: str | None, overwrite: bool = True) -> None:
        if overwrite or col not in self.cells:
            self.cells[col] = (ch, style)

    def text(self, col: int, text: str, style: str | None) -> None:
        for i, ch in enumerate(text):
            self.cells[col + i] = (ch, style)

    def segments(self) -> list[Seg]:
        if not self.cells:
            return []
        segs: list[Seg] = []
        last = max(self.cells)
        cur_text, cur_style = "", None
        for c in range(1, last + 1):
            ch, st = self.cells.get(c, (" ", None))
            if st != cur_style and cur_text:
                segs.append((cur_text, cur_style))
                cur_text = ""
            cur_style = st
            cur_text += ch
        if cur_text:
            segs.append((cur_text, cur_style))
        return segs


class _HumanRenderer:
    def __init__(self, sources: _SourceCache, cwd: str | None) -> None:
        self.src = sources
        self.cwd = cwd

    # --------------------------------------------------------------------- pieces

    def _loc(self, span: Span) -> str:
        path = display_path(span.file, self.cwd)
        if span.line <= 0:
            return path
        return f"{path}:{span.line}:{span.column}"

    def _usable(self, span: Span) -> bool:
        lines = self.src.lines(span.file)
        return (lines is not None and 1 <= span.line <= len(lines)
                and span.end_line >= span.line)

    def _anns_for(self, span: Span, primary: bool, message: str, style: str,
                  lines: list[str]) -> _Ann:
        end_line = min(span.end_line, len(lines))
        end_col = span.end_column if end_line == span.end_line else len(lines[end_line - 1]) + 1
        if end_line == span.line and end_col < span.column:
            end_col = span.column
        return _Ann(span.line, span.column, end_line, end_col, primary, message, style)

    def snippet(self, file: str, anns: list[_Ann], width: int) -> list[list[Seg]]:
        """Source lines of ``file`` with the annotations drawn under them."""
        lines = self.src.lines(file) or []
        out: list[list[Seg]] = []
        pad = " " * width

        def gutter(num: int | None) -> list[Seg]:
            label = str(num).rjust(width) if num is not None else pad
            return [(label + " |", _GUTTER)]

        # One multi-line annotation gets the rustc "rail"; any other is split into a
        # start marker and an end marker.
        rail: _Ann | None = None
        singles: list[_Ann] = []
        for a in sorted(anns, key=lambda a: (not a.primary, a.line, a.col)):
            if a.end_line == a.line:
                singles.append(a)
            elif rail is None:
                rail = a
            else:
                first = lines[a.line - 1]
                singles.append(_Ann(a.line, a.col, a.line, max(len(first) + 1, a.col + 1),
                                    a.primary, "", a.style))
                last = lines[a.end_line - 1]
                singles.append(_Ann(a.end_line, _first_nonblank(last), a.end_line,
                                    max(a.end_col, _first_nonblank(last) + 1), a.primary,
                                    a.message, a.style))

        shown: set[int] = {a.line for a in singles}
        rail_slash = False
        if rail is not None:
            rail_slash = rail.col <= _first_nonblank(lines[rail.line - 1])
            shown |= {rail.line, rail.end_line}
            if rail.end_line - rail.line <= 4:
                shown |= set(range(rail.line, rail.end_line + 1))
            else:
                shown |= {rail.line + 1, rail.end_line - 1}
        ordered = sorted(n for n in shown if 1 <= n <= len(lines))

        def rail_for(num: float, row: bool) -> list[Seg]:
            """Two columns left of the source: '/ ', '| ' or blanks."""
            if rail is None:
                return []
            if num == rail.line and not row:
                return [("/ ", rail.style)] if rail_slash else [("  ", None)]
            inside = rail.line < num <= rail.end_line if not row else \
                (rail.line <= num < rail.end_line if rail_slash else rail.line < num < rail.end_line)
            return [("| ", rail.style)] if inside else [("  ", None)]

        out.append(gutter(None))
        prev = None
        for num in ordered:
            if prev is not None and num - prev > 1:
                if num - prev == 2:
                    self._source_row(out, gutter, rail_for, lines, prev + 1)
                else:
                    out.append([("...", _GUTTER)])
            prev = num
            self._source_row(out, gutter, rail_for, lines, num)
            line = lines[num - 1]
            here = [a for a in singles if a.line == num]
            if here:
                for row in self._single_rows(here, line):
                    out.append(gutter(None) + [(" ", None)] + rail_for(num, True) + row)
            if rail is not None and num == rail.line and not rail_slash:
                c = _dcol(line, rail.col)
                out.append(gutter(None) + [(" ", None),
                                            (" " + "_" * c + "^", rail.style)])
            if rail is not None and num == rail.end_line:
                last_char = max(rail.end_col - 1, 1)
                c = _dcol(line, last_char)
                seg: list[Seg] = [("|" + "_" * c + "^", rail.style)]
                msg_lines = rail.message.split("\n") if rail.message else []
                if msg_lines:
                    seg.append((" " + msg_lines[0], rail.style))
                out.append(gutter(None) + [(" ", None)] + seg)
                for extra in msg_lines[1:]:
                    out.append(gutter(None) + [(" ", None)]
                               + [(" " * (c + 3) + extra, rail.style)])
        return out

    def _source_row(self, out, gutter, rail_for, lines, num) -> None:
        text = _clean(lines[num - 1])
        row = gutter(num) + rail_for(num, False)
        if text:
            row = row[:1] + [(" ", None)] + row[1:] + [(text, None)]
        out.append(row)

    def _single_rows(self, anns: list[_Ann], line: str) -> list[list[Seg]]:
        """Underline row plus message rows for the single-line annotations of a line."""
        canvas = _Canvas()
        # Secondary first so the primary's carets win where they overlap.
        for a in sorted(anns, key=lambda a: a.primary):
            start = _dcol(line, a.col)
            end = max(_dcol(line, a.end_col), start + 1)
            ch = "^" if a.primary else "-"
            for c in range(start, end):
                canvas.put(c, ch, a.style)
        with_msg = sorted((a for a in anns if a.message),
                          key=lambda a: (_dcol(line, a.col), a.primary))
        rows: list[list[Seg]] = []
        if not with_msg:
            return [canvas.segments()]
        right = with_msg[-1]
        rest = with_msg[:-1]
        msg_col = max(canvas.cells) + 2
        right_lines = right.message.split("\n")
        canvas.text(msg_col, right_lines[0], right.style)
        rows.append(canvas.segments())
        for extra in right_lines[1:]:
            c = _Canvas()
            for a in rest:
                c.put(_dcol(line, a.col), "|", a.style)
            c.text(msg_col, extra, right.style)
            rows.append(c.segments())
        if rest:
            c = _Canvas()
            for a in rest:
                c.put(_dcol(line, a.col), "|", a.style)
            rows.append(c.segments())
            for i in range(len(rest) - 1, -1, -1):
                a = rest[i]
                for j, text in enumerate(a.message.split("\n")):
                    c = _Canvas()
                    for b in rest[:i]:
                        c.put(_dcol(line, b.col), "|", b.style)
                    c.text(_dcol(line, a.col), text, a.style)
                    rows.append(c.segments())
        return rows

    # --------------------------------------------------------------------- blocks

    def block(self, kind: str, code: str | None, title: str, span: Span, message: str,
              labels: Iterable[tuple[Span, str]], help: str | None,
              notes: Sequence[str], primary_char_style: str) -> list[list[Seg]]:
        sev_style = _SEVERITY_STYLE.get(kind, "bold")
        head: list[Seg] = [(kind + (f"[{code}]" if code else ""), sev_style),
                           (": " + title, "bold")]
        out: list[list[Seg]] = [head]

        labels = list(labels)
        groups: dict[str, list[_Ann]] = {}
        order: list[str] = []
        shown_message = False
        if self._usable(span):
            lines = self.src.lines(span.file)
            assert lines is not None
            groups[span.file] = [self._anns_for(span, kind != "explain", message,
                                                primary_char_style, lines)]
            order.append(span.file)
            shown_message = True
        for lspan, lmsg in labels:
            if not self._usable(lspan):
                continue
            lines = self.src.lines(lspan.file)
            assert lines is not None
            if lspan.file not in groups:
                groups[lspan.file] = []
                order.append(lspan.file)
            groups[lspan.file].append(self._anns_for(lspan, False, lmsg, _SECONDARY, lines))

        max_line = max([span.end_line, span.line] + [s.end_line for s, _ in labels] + [1])
        width = len(str(max_line))
        pad = " " * width

        if span.line > 0 or span.file:
            out.append([(pad + "--> ", _GUTTER), (self._loc(span), None)])
        if not shown_message and message:
            out.append([(pad + " = ", _GUTTER), (message, None)])
        for i, file in enumerate(order):
            anns = groups[file]
            if i > 0 or file != span.file:
                first = min(anns, key=lambda a: (a.line, a.col))
                loc = self._loc(Span(file, first.line, first.col, first.line, first.col))
                out.append([(pad + "::: ", _GUTTER), (loc, None)])
            out.extend(self.snippet(file, anns, width))
        # Labels we could not draw still say what they had to say.
        for lspan, lmsg in labels:
            if not self._usable(lspan) and lmsg:
                out.append([(pad + " = ", _GUTTER), ("note: ", "bold"),
                            (f"{lmsg} ({self._loc(lspan)})", None)])
        extras: list[tuple[str, str]] = []
        if help:
            extras.append(("help", help))
        extras.extend(("note", n) for n in notes)
        if extras:
            if order:
                out.append([(pad + " |", _GUTTER)])
            for word, text in extras:
                first, *more = text.split("\n")
                out.append([(pad + " = ", _GUTTER), (word + ":", "bold"), (" " + first, None)])
                indent = pad + "   " + " " * (len(word) + 2)
                for m in more:
                    out.append([(indent + m, None)])
        return out

    def diagnostic(self, d: Diagnostic) -> list[list[Seg]]:
        title = d.title
        message = d.message if _adds_information(d.message, title) else ""
        style = "bold red" if d.is_error else "bold yellow"
        return self.block(d.severity, d.code, title, d.span, message,
                          [(lab.span, lab.message) for lab in d.labels], d.help, d.notes,
                          style)

    def explanation(self, span: Span, text: str) -> list[list[Seg]]:
        first, *rest = (text.strip("\n") or "").split("\n") or [""]
        # Explain the construct by its first line only: a whole block would be noise.
        lines = self.src.lines(span.file)
        if lines is not None and 1 <= span.line <= len(lines) and span.end_line > span.line:
            head = lines[span.line - 1].rstrip().rstrip("{").rstrip()
            span = Span(span.file, span.line, span.column, span.line,
                        max(len(head) + 1, span.column + 1))
        return self.block("explain", None, first, span, "", [], None, rest, "bold cyan")


def _segments_to_plain(rows: list[list[Seg]]) -> str:
    return "\n".join("".join(t for t, _ in row).rstrip() for row in rows)


def _segments_to_ansi(rows: list[list[Seg]]) -> str:
    import io

    from rich.console import Console
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=10_000,
                      highlight=False, emoji=False, markup=False, soft_wrap=True)
    for row in rows:
        text = Text()
        for t, style in row:
            text.append(t, style=style or "")
        text.rstrip()
        console.print(text)
    return buf.getvalue().rstrip("\n")


def render_human(diags: Sequence[Diagnostic], files: int, *, color: bool = False,
                 explanations: Sequence[Explanation] | None = None,
                 sources: dict[str, str] | None = None, cwd: str | None = None,
                 summary: bool = True) -> str:
    """rustc-style report: one block per diagnostic, then explanations, then a summary.

    ``sources`` maps a file name to its text for files not on disk; other files are read
    from disk (a missing one just loses its snippet). ``color`` uses Rich (ANSI codes).
    """
    r = _HumanRenderer(_SourceCache(sources), cwd)
    rows: list[list[Seg]] = []
    for d in diags:
        rows.extend(r.diagnostic(d))
        rows.append([])
    for span, text in explanations or ():
        rows.extend(r.explanation(span, text))
        rows.append([])
    if summary:
        errors, warnings = _counts(diags)
        line = summary_line(diags, files)
        if errors:
            rows.append([("error", "bold red"), (line[len("error"):], "bold")])
        else:
            rows.append([(line, "bold green" if not warnings else "bold yellow")])
    elif rows and not rows[-1]:
        rows.pop()
    return _segments_to_ansi(rows) if color else _segments_to_plain(rows)


# ============================================================================= json


def _span_dict(span: Span) -> dict:
    return {"file": span.file, "line": span.line, "column": span.column,
            "end_line": span.end_line, "end_column": span.end_column}


def render_json(diags: Sequence[Diagnostic], files: int,
                explanations: Sequence[Explanation] | None = None) -> str:
    """The spec's object (§11); with ``--explain`` also ``"explanations"``."""
    errors, warnings = _counts(diags)
    obj: dict = {
        "files": files,
        "errors": errors,
        "warnings": warnings,
        "diagnostics": [to_json_dict(d) for d in diags],
    }
    if explanations is not None:
        obj["explanations"] = [dict(_span_dict(s), text=t) for s, t in explanations]
    return json.dumps(obj, indent=2)


# ============================================================================= github


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def _gh_location(span: Span, cwd: str | None) -> list[str]:
    props: list[str] = []
    if span.file and not span.file.startswith("<"):
        props.append("file=" + _gh_prop(display_path(span.file, cwd).replace(os.sep, "/")))
    if span.line > 0:
        end_line = max(span.end_line, span.line)
        # GitHub's endColumn is inclusive; ours is exclusive.
        end_col = max(span.end_column - 1, 1)
        if end_line == span.line:
            end_col = max(end_col, span.column)
        props += [f"line={span.line}", f"col={max(span.column, 1)}", f"endLine={end_line}",
                  f"endColumn={end_col}"]
    return props


def _full_message(d: Diagnostic) -> str:
    parts = [d.message or d.title]
    if d.help:
        parts.append(f"help: {d.help}")
    parts.extend(f"note: {n}" for n in d.notes)
    return "\n".join(parts)


def render_github(diags: Sequence[Diagnostic], files: int,
                  explanations: Sequence[Explanation] | None = None,
                  cwd: str | None = None) -> str:
    """GitHub Actions workflow commands: one ``::error``/``::warning`` line each."""
    out: list[str] = []
    for d in diags:
        kind = "error" if d.is_error else "warning"
        props = _gh_location(d.span, cwd) + ["title=" + _gh_prop(d.code)]
        out.append(f"::{kind} {','.join(props)}::{_gh_data(_full_message(d))}")
    for span, text in explanations or ():
        props = _gh_location(span, cwd) + ["title=explain"]
        out.append(f"::notice {','.join(props)}::{_gh_data(text)}")
    return "\n".join(out)


# ============================================================================= sarif


def _rule_name(title: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in title).split()
    return "".join(w[:1].upper() + w[1:] for w in words)


def _sarif_level(code: str) -> str:
    return "warning" if code.startswith("W") else "error"


def _artifact(file: str, cwd: str) -> dict:
    from pathlib import Path
    from urllib.parse import quote

    if not file:
        return {"uri": "unknown"}
    if file.startswith("<"):
        return {"uri": quote(file.strip("<>") or "unknown")}
    rel = display_path(file, cwd)
    if not os.path.isabs(rel):
        return {"uri": quote(rel.replace(os.sep, "/")), "uriBaseId": "%SRCROOT%"}
    return {"uri": Path(rel).as_uri()}


def _sarif_location(span: Span, cwd: str, message: str | None = None) -> dict:
    phys: dict = {"artifactLocation": _artifact(span.file, cwd)}
    if span.line > 0:
        col = max(span.column, 1)
        end_line = max(span.end_line, span.line)
        end_col = span.end_column if span.end_column >= 1 else col
        if end_line == span.line:
            end_col = max(end_col, col)
        phys["region"] = {"startLine": span.line, "startColumn": col,
                          "endLine": end_line, "endColumn": end_col}
    loc: dict = {"physicalLocation": phys}
    if message:
        loc["message"] = {"text": message}
    return loc


def sarif_log(diags: Sequence[Diagnostic], files: int, cwd: str | None = None) -> dict:
    """The SARIF 2.1.0 log as a dict (see :func:`render_sarif`)."""
    from pathlib import Path

    cwd = cwd or os.getcwd()
    codes = list(CODES)
    index = {c: i for i, c in enumerate(codes)}
    rules = []
    for code in codes:
        title, description = CODES[code]
        rules.append({
            "id": code,
            "name": _rule_name(title),
            "shortDescription": {"text": title},
            "fullDescription": {"text": description},
            "defaultConfiguration": {"level": _sarif_level(code)},
        })
    results = []
    for d in diags:
        result: dict = {
            "ruleId": d.code,
            "level": "error" if d.is_error else "warning",
            "message": {"text": _full_message(d)},
            "locations": [_sarif_location(d.span, cwd)],
        }
        if d.code in index:
            result["ruleIndex"] = index[d.code]
        if d.labels:
            result["relatedLocations"] = [
                dict(_sarif_location(lab.span, cwd, lab.message or None), id=i)
                for i, lab in enumerate(d.labels)]
        props: dict = {"title": d.title}
        if d.help:
            props["help"] = d.help
        if d.notes:
            props["notes"] = list(d.notes)
        result["properties"] = props
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kflow",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(cwd).as_uri().rstrip("/") + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"files": files},
        }],
    }


def render_sarif(diags: Sequence[Diagnostic], files: int, cwd: str | None = None) -> str:
    return json.dumps(sarif_log(diags, files, cwd), indent=2)


# ============================================================================= dispatch


def render(fmt: str, diags: Sequence[Diagnostic], files: int, *, color: bool = False,
           explanations: Sequence[Explanation] | None = None) -> str:
    """Render in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":
        return render_json(diags, files, explanations)
    if fmt == "github":
        return render_github(diags, files, explanations)
    if fmt == "sarif":
        return render_sarif(diags, files)
    if fmt == "human":
        return render_human(diags, files, color=color, explanations=explanations)
    raise ValueError(f"unknown format {fmt!r}")


def want_color(stream) -> bool:
    """Colour only for a terminal; NO_COLOR wins, FORCE_COLOR forces."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
