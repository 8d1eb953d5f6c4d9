"""std.core, std.json and std.text implementations, called directly."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from kailash_dsl.stdlib import core, json_, text
from kailash_dsl.stdlib.errors import NodeError


class Ctx:
    def __init__(self, **kw):
        self.run_id = "run-1"
        self.step_key = "step"
        self.attempt = 1
        self.idempotency_key = "run-1/step"
        self.lines: list[str] = []
        self.__dict__.update(kw)

    def log(self, msg):
        self.lines.append(msg)


# ----------------------------------------------------------------------------- core

def test_log_writes_to_ctx():
    ctx = Ctx()
    assert core.log("hello", ctx=ctx) is None
    core.log("careful", level="warning", ctx=ctx)
    assert ctx.lines == ["hello", "[warning] careful"]


def test_log_without_ctx_uses_python_logging(caplog):
    caplog.set_level("INFO", logger="kflow.log")
    core.log("to logging", level="error")
    assert "to logging" in caplog.text


def test_log_rejects_unknown_level():
    with pytest.raises(NodeError) as e:
        core.log("x", level="loud")
    assert e.value.kind == "ValueError" and "loud" in str(e.value)


def test_echo_returns_value_unchanged():
    value = {"a": [1, 2, {"b": None}]}
    assert core.echo(value) is value


def test_fail_raises_with_kind():
    with pytest.raises(NodeError) as e:
        core.fail("OutOfStock", "sku A1 is gone")
    assert e.value.kind == "OutOfStock"
    assert str(e.value) == "sku A1 is gone"


def test_now_is_iso_utc():
    stamp = core.now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - parsed).total_seconds()) < 5


def test_uuid_is_v4_and_fresh():
    a, b = core.uuid(), core.uuid()
    assert len(a) == 36 and a != b
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a)


# ----------------------------------------------------------------------------- json

def test_json_parse_and_dump_round_trip():
    value = {"b": [1, 2.5, None, True], "a": "é"}
    assert json_.parse(json_.dump(value)) == value
    assert json_.dump(value, sort_keys=True) == '{"a":"é","b":[1,2.5,null,true]}'
    assert json_.dump([1], indent=2) == "[\n  1\n]"


def test_json_parse_error_kind():
    with pytest.raises(NodeError) as e:
        json_.parse("{nope")
    assert e.value.kind == "JsonError"


def test_json_query_jmespath():
    order = {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 3}]}
    assert json_.query(order, "items[?qty > `1`].sku") == ["B"]
    assert json_.query(order, "sum(items[].qty)") == 4
    assert json_.query(order, "missing") is None
    with pytest.raises(NodeError) as e:
        json_.query(order, "items[?")
    assert e.value.kind == "JsonError"


# ----------------------------------------------------------------------------- text

def test_template_renders():
    out = text.template("Hi {{ name }}, {{ items | length }} items\n", {"name": "Ada", "items": [1, 2]})
    assert out == "Hi Ada, 2 items\n"


def test_template_strict_undefined():
    with pytest.raises(NodeError) as e:
        text.template("{{ missing }}", {})
    assert e.value.kind == "TemplateError" and "missing" in str(e.value)
    assert text.template("[{{ missing }}]", {}, strict=False) == "[]"


def test_template_is_sandboxed():
    with pytest.raises(NodeError) as e:
        text.template("{{ x.__class__.__mro__[1].__subclasses__() }}", {"x": "s"})
    assert e.value.kind == "TemplateError"


def test_template_syntax_error():
    with pytest.raises(NodeError) as e:
        text.template("{% if %}", {})
    assert e.value.kind == "TemplateError" and "line 1" in str(e.value)


def test_regex_search_match_fullmatch():
    r = text.regex(r"(?P<user>\w+)@(\w+)\.com", "mail ada@example.com now")
    assert r["matched"] and r["match"] == "ada@example.com"
    assert r["groups"] == ["ada", "example"] and r["named"] == {"user": "ada"}
    assert r["count"] == 1 and r["text"] == "mail ada@example.com now"
    assert not text.regex(r"\w+@", "mail ada@x", op="match")["matched"]
    assert text.regex(r"\d+", "123", op="fullmatch")["matched"]
    assert not text.regex(r"\d+", "123a", op="fullmatch")["matched"]


def test_regex_optional_group_is_null():
    r = text.regex(r"(a)(b)?", "a")
    assert r["groups"] == ["a", None]


def test_regex_findall_and_sub():
    r = text.regex(r"\d+", "a1 b22 c333", op="findall")
    assert r["matches"] == ["1", "22", "333"] and r["count"] == 3 and r["matched"]
    r = text.regex(r"(\w)(\d+)", "a1 b22", op="sub", replacement=r"\2\1")
    assert r["text"] == "1a 22b" and r["count"] == 2


def test_regex_flags_and_errors():
    assert text.regex("HELLO", "hello", flags="i")["matched"]
    assert text.regex("^b", "a\nb", flags="m")["matched"]
    for kwargs in ({"pattern": "("}, {"flags": "q"}, {"op": "split"}):
        args = {"pattern": "a", "text": "a", **kwargs}
        with pytest.raises(NodeError) as e:
            text.regex(**args)
        assert e.value.kind == "RegexError"
