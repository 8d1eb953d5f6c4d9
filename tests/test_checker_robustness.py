"""The checker never raises: mutated programs (renamed identifiers, inserted and deleted
tokens) only ever produce diagnostics."""

from __future__ import annotations

import random
import re
from pathlib import Path

from kailash_dsl.compiler.api import check_source

HERE = Path(__file__).resolve().parent
SOURCES = sorted((HERE / "cases" / "check").rglob("*.kflow"))
SNIPPETS = ["null", "?", "?.", "[0]", "when x", "yield 1", "return", 'fail "x"', "{}", "[]",
            "transaction 2pc {", "}", "@retry(attempts: 2)\n", "json", "int?", "2s",
            'wait "s" timeout 1s', "sleep 1s", "for x in [1] {", '"${x}"', "??", "e"]


def mutate(text: str, rnd: random.Random) -> str:
    toks = re.findall(r"\w+|\s+|.", text)
    names = [i for i, t in enumerate(toks) if re.fullmatch(r"[A-Za-z_]\w*", t)]
    pool = [toks[i] for i in names] + ["null", "1", '"s"', "1.5", "json", "true"]
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(4)
        if op == 0 and names:
            toks[rnd.choice(names)] = rnd.choice(pool)
        elif op == 1:
            del toks[rnd.randrange(len(toks))]
        elif op == 2:
            toks.insert(rnd.randrange(len(toks)), f" {rnd.choice(SNIPPETS)} ")
        else:
            i, j = rnd.randrange(len(toks)), rnd.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
    return "".join(toks)


def test_mutated_programs_never_crash_the_checker():
    rnd = random.Random(20240601)
    texts = [(p, p.read_text(encoding="utf-8")) for p in SOURCES]
    for _ in range(400):
        path, text = rnd.choice(texts)
        src = mutate(text, rnd)
        try:
            program = check_source(src, str(path))
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"checker crashed on a mutation of {path.name}:\n{src}") from exc
        for d in program.diagnostics:
            assert d.message and d.span.line >= 1
