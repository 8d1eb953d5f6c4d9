"""The compiled checkers and encoders agree with the generic ``check_value``/``to_json``.

Served requests and steps go through :mod:`kailash_dsl.compiler.validators`; the CLI's
messages are written against the generic functions. Any divergence — a value accepted
by one and refused by the other, a different converted value, a different error — would
make a served run behave unlike ``kflow run``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kailash_dsl.compiler import types as T
from kailash_dsl.compiler import validators as V

prims = st.sampled_from([T.INT, T.FLOAT, T.STR, T.BOOL, T.BYTES, T.DURATION, T.NULL, T.JSON,
                         T.UNKNOWN, T.ErrorT(), T.EnumT("Color", ("red", "green"))])


def _records(children):
    field = st.builds(
        T.FieldT, st.sampled_from(["a", "b", "c"]), children, st.booleans(),
        st.sampled_from([None, 1, "x", [1, 2], {"k": [3]}]))
    return st.lists(field, max_size=3, unique_by=lambda f: f.name).map(
        lambda fs: T.RecordT(tuple(fs)))


types = st.recursive(prims, lambda children: st.one_of(
    children.map(T.Optional), children.map(T.ListT), children.map(T.MapT),
    _records(children)), max_leaves=8)

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=4), st.sampled_from(["red", "1s", "2m", "aGk="]),
                    st.binary(max_size=3))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3), st.tuples(children, children),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), children, max_size=3),
    st.dictionaries(st.integers(0, 3), children, max_size=2)), max_leaves=10)


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except T.ValueMismatch as exc:
        return "error", (type(exc), str(exc), exc.path)


def same(a, b) -> bool:
    """Equal values of equal Python types (1 and 1.0 differ here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=600, deadline=None)
@given(types, values, st.booleans())
def test_checker_equals_check_value(t, v, from_json):
    fast = outcome(V.checker(t, from_json=from_json), v, "in")
    slow = outcome(lambda x, p: T.check_value(t, x, p, from_json=from_json), v, "in")
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert same(fast[1], slow[1])
    else:
        assert fast[1] == slow[1]


@settings(max_examples=600, deadline=None)
@given(types, values)
def test_encoder_equals_to_json(t, v):
    assert same(V.encoder(t)(v), T.to_json(t, v))


def test_fast_path_fills_defaults_with_fresh_copies():
    t = T.RecordT((T.FieldT("tags", T.ListT(T.STR), True, ["a"]),
                   T.FieldT("note", T.Optional(T.STR))))
    check = V.checker(t, from_json=True)
    first = check({}, "input")
    assert first == {"tags": ["a"], "note": None}
    first["tags"].append("changed")
    assert check({}, "input") == {"tags": ["a"], "note": None}


def test_a_mismatch_names_the_field_as_the_generic_check_does():
    t = T.RecordT((T.FieldT("items", T.ListT(T.INT)),))
    try:
        V.checker(t)({"items": [1, "two"]}, "input")
    except T.ValueMismatch as exc:
        assert exc.path == "input.items[1]"
    else:  # pragma: no cover
        raise AssertionError("a str in a list[int] was accepted")
