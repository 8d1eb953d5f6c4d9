"""Diagnostics: the one model every stage reports problems in.

The compiler never raises for a problem in the user's program: it returns
:class:`Diagnostic` values. Rendering (human, json, github, sarif) lives in
``kailash_dsl.render`` so that the library path stays free of Rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .grammar.ast import Span

#: code -> (title, description). The title heads the human rendering
#: (``error[E0201]: mismatched types``); the description is the SARIF rule text.
CODES: dict[str, tuple[str, str]] = {
    "E0001": ("syntax error", "The file does not follow the kflow grammar."),
    "E0101": ("unknown name", "A name is used that is not defined in scope."),
    "E0102": ("unknown node, type or workflow",
              "A name in call or type position is not a node, workflow, type or builtin."),
    "E0103": ("duplicate definition", "A name is defined twice in the same scope."),
    "E0104": ("import cycle or unknown import",
              "An import cannot be resolved, or imports form a cycle."),
    "E0201": ("mismatched types", "A value's type is not assignable to the expected type."),
    "E0202": ("missing required argument", "A call omits a parameter that has no default."),
    "E0203": ("unknown argument", "A call passes an argument the callee does not declare."),
    "E0204": ("unknown field", "A field is read that the value's type does not have."),
    "E0205": ("wrong return type", "A returned value does not match the declared result."),
    "E0206": ("access on an optional value",
              "A field or index is read on a value that may be null."),
    "E0207": ("extra field in record literal",
              "A record literal has a field its expected type does not declare."),
    "E0208": ("misplaced yield", "`yield` outside `for`, or a loop mixing yield and no yield."),
    "E0301": ("unknown or invalid attribute",
              "An attribute is unknown, misplaced, or has bad arguments."),
    "E0302": ("data dependency cycle", "Bindings depend on each other in a cycle."),
    "E0401": ("transaction cannot be made atomic",
              "A transaction has a write step that can be neither prepared nor compensated."),
    "E0402": ("compensation cannot be called",
              "A compensation node's parameters are not available from the step."),
    "E0403": ("explicit transaction pattern impossible",
              "The pattern written on the transaction cannot be used for this step."),
    "E0501": ("missing return", "Some path through a workflow with a result type ends "
                                "without `return` or `fail`."),
    "E0601": ("resume refused: program changed",
              "The program changed since the run started."),
    "W0001": ("unused binding", "A `let` binding is never read."),
    "W0002": ("unreachable statement", "A statement can never run."),
    "W0003": ("optional result used without a null check",
              "A `when`-guarded result is used as if it were always present."),
}


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary span with a short message (rustc's `-` underlines)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    severity: str = "error"  # "error" | "warning"
    help: str | None = None
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def title(self) -> str:
        return CODES.get(self.code, (self.code, ""))[0]

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.column, self.code)


def error(code: str, message: str, span: Span, help: str | None = None,
          labels: tuple[Label, ...] = (), notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(code, message, span, "error", help, labels, notes)


def warning(code: str, message: str, span: Span, help: str | None = None,
            labels: tuple[Label, ...] = (), notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(code, message, span, "warning", help, labels, notes)


def did_you_mean(name: str, candidates) -> str | None:
    """The closest candidate to ``name``, rustc style, or None when nothing is close."""
    import difflib

    cands = [c for c in candidates if c != name]
    if not cands:
        return None
    lower = {c.lower(): c for c in cands}
    if name.lower() in lower:
        return lower[name.lower()]
    best = difflib.get_close_matches(name, cands, n=1, cutoff=0.6)
    return best[0] if best else None


def to_json_dict(d: Diagnostic) -> dict:
    """The spec's JSON shape for one diagnostic (§11)."""
    return {
        "code": d.code,
        "severity": d.severity,
        "file": d.span.file,
        "line": d.span.line,
        "column": d.span.column,
        "end_line": d.span.end_line,
        "end_column": d.span.end_column,
        "message": d.message,
        "help": d.help,
    }
