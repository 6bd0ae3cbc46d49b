"""References, rendering and conditions (dwf.expr)."""

from __future__ import annotations

import contextlib
import copy
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dwf.expr
from dwf.errors import ExpressionError
from dwf.expr import (
    OPERATORS,
    ResolveContext,
    evaluate_condition,
    is_truthy,
    lookup,
    references,
    render,
    resolve,
    search_regex,
)

FIXED_NOW = datetime(2026, 11, 25, 16, 39, 48, 123456, tzinfo=UTC)


def make_ctx(
    variables: dict[str, Any] | None = None,
    input: dict[str, Any] | None = None,
    history: list[Any] | None = None,
) -> ResolveContext:
    return ResolveContext(
        variables=variables or {},
        input=input or {},
        now=lambda: FIXED_NOW,
        history=lambda: list(history or []),
    )


CTX = make_ctx(
    variables={
        "count": 10,
        "name": "hello world",
        "status": "active",
        "items": [1, 2, 3],
        "empty_str": "",
        "nil_val": None,
        "flag": True,
        "off": False,
        "zero": 0,
        "price": 2.0,
        "ratio": 12.5,
        "numeric_text": " 12.5 ",
        "letters": ["a", "b", "c"],
        "user": {"first": "John", "last": "Doe", "active": False, "tags": []},
        "orders": [{"id": "o1", "lines": [{"sku": "A", "qty": 2}]}],
    },
    input={"amount": 150, "user": {"name": "Ada"}, "items": [{"name": "pen"}], "flag": False},
)


def check(field: str, op: str, value: Any = None, ctx: ResolveContext = CTX) -> bool:
    return evaluate_condition(field, op, value, ctx)


# --- resolve: values, roots and paths ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, 2.5, True, False, b"$x"])
def test_non_strings_are_returned_unchanged(value: Any) -> None:
    assert resolve(value, CTX) is value


def test_a_string_without_dollar_is_returned_as_is() -> None:
    assert resolve("plain text", CTX) == "plain text"


def test_dollar_input_is_the_whole_input() -> None:
    assert resolve("$input", CTX) == CTX.input


def test_a_nested_input_path_keeps_its_type() -> None:
    assert resolve("$input.user.name", CTX) == "Ada"
    assert resolve("$input.amount", CTX) == 150


def test_a_variable_is_read_from_the_variables() -> None:
    assert resolve("$count", CTX) == 10


def test_a_whole_string_reference_keeps_dicts_lists_and_none() -> None:
    assert resolve("$user", CTX) == CTX.variables["user"]
    assert resolve("$items", CTX) == [1, 2, 3]
    assert resolve("$nil_val", CTX) is None


def test_a_missing_variable_is_none() -> None:
    assert resolve("$nope", CTX) is None
    assert resolve("$nope.deeper.still", CTX) is None


def test_dollar_now_is_an_iso_string_in_utc() -> None:
    assert resolve("$now", CTX) == "2026-11-25T16:39:48.123456+00:00"


def test_dollar_now_converts_an_aware_clock_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    ctx = ResolveContext({}, {}, now=lambda: datetime(2026, 1, 1, 12, tzinfo=plus_two))
    assert resolve("$now", ctx) == "2026-01-01T10:00:00+00:00"


def test_dollar_now_takes_a_naive_clock_to_be_utc() -> None:
    ctx = ResolveContext({}, {}, now=lambda: datetime(2026, 1, 1, 12))
    assert resolve("$now", ctx) == "2026-01-01T12:00:00+00:00"


def test_the_default_clock_is_utc_now() -> None:
    stamp = resolve("$now", ResolveContext({}, {}))
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


def test_dollar_history_returns_the_loaded_history() -> None:
    assert resolve("$history", make_ctx(history=[{"step": "a"}])) == [{"step": "a"}]


def test_history_is_loaded_only_when_referenced() -> None:
    calls: list[int] = []

    def load() -> list[Any]:
        calls.append(1)
        return []

    ctx = ResolveContext({"x": 1}, {}, history=load)
    resolve({"a": "$x", "b": "text"}, ctx)
    assert calls == []
    resolve("$history", ctx)
    assert calls == [1]


def test_the_default_history_is_empty() -> None:
    assert resolve("$history", ResolveContext({}, {})) == []


@pytest.mark.parametrize("ref", ["$now.year", "$history.0", "Time: $now.day"])
def test_a_path_below_now_or_history_is_an_error_naming_the_reference(ref: str) -> None:
    with pytest.raises(ExpressionError, match=r"reference '\$(now|history)\.") as info:
        resolve(ref, CTX)
    assert info.value.facts["reference"].startswith("$")


def test_false_survives_a_nested_lookup() -> None:
    assert resolve("$input.flag", CTX) is False
    assert resolve("$user.active", CTX) is False


def test_zero_and_empty_values_survive_a_lookup() -> None:
    ctx = make_ctx(input={"n": 0, "s": "", "l": [], "d": {}})
    assert [resolve(f"$input.{k}", ctx) for k in "nsld"] == [0, "", [], {}]


def test_list_items_are_read_by_index() -> None:
    assert resolve("$letters.1", CTX) == "b"
    assert resolve("$input.items.0.name", CTX) == "pen"
    assert resolve("$orders.0.lines.0.qty", CTX) == 2


def test_an_index_out_of_range_is_none() -> None:
    assert resolve("$letters.3", CTX) is None


def test_a_name_segment_on_a_list_is_none() -> None:
    assert resolve("$letters.first", CTX) is None


def test_a_digit_segment_falls_back_to_an_integer_dict_key() -> None:
    ctx = make_ctx({"by_int": {0: "zero"}, "both": {0: "int", "0": "str"}})
    assert resolve("$by_int.0", ctx) == "zero"
    assert resolve("$both.0", ctx) == "str"


@pytest.mark.parametrize(
    "ref", ["$name.upper", "$name.__class__", "$count.real", "$flag.numerator", "$name.0"]
)
def test_references_never_call_methods_or_read_attributes(ref: str) -> None:
    assert resolve(ref, CTX) is None


def test_a_dict_is_resolved_value_by_value_with_keys_untouched() -> None:
    value = {"$count": "Hello $name", "n": "$count", "nested": {"deep": "$input.user.name"}}
    assert resolve(value, CTX) == {
        "$count": "Hello hello world",
        "n": 10,
        "nested": {"deep": "Ada"},
    }


def test_a_list_is_resolved_element_by_element() -> None:
    ctx = make_ctx({"x": 1, "y": 2})
    assert resolve(["$x", "$y", 3], ctx) == [1, 2, 3]


def test_a_tuple_stays_a_tuple() -> None:
    assert resolve(("$count", "x"), CTX) == (10, "x")


def test_resolve_never_mutates_its_argument() -> None:
    value = {"a": ["$count", {"b": "$name"}], "c": "Total $count"}
    before = copy.deepcopy(value)
    resolve(value, CTX)
    assert value == before


# --- embedded references -------------------------------------------------------------------------


def test_embedded_references_are_replaced_by_their_text() -> None:
    ctx = make_ctx({"first": "John", "last": "Doe"})
    assert resolve("Hello $first $last!", ctx) == "Hello John Doe!"


def test_surrounding_whitespace_makes_a_reference_embedded() -> None:
    assert resolve(" $count", CTX) == " 10"
    assert resolve("$count ", CTX) == "10 "


def test_embedded_references_can_index_lists() -> None:
    assert resolve("Item: $letters.0", CTX) == "Item: a"
    assert resolve("First line: $orders.0.lines.0.sku!", CTX) == "First line: A!"


def test_a_trailing_dot_is_kept_as_text() -> None:
    assert resolve("Total: $count.", CTX) == "Total: 10."
    assert resolve("$count.", CTX) == "10."


def test_a_digit_segment_running_into_letters_is_text() -> None:
    assert resolve("$letters.0x", CTX) == '["a", "b", "c"].0x'


@pytest.mark.parametrize("text", ["costs $5", "50$", "a $ b", "$-1", "$.x", "$"])
def test_a_dollar_not_followed_by_a_name_is_literal(text: str) -> None:
    assert resolve(text, CTX) == text


def test_double_dollar_is_an_escaped_dollar() -> None:
    assert resolve("$$input", CTX) == "$input"
    assert resolve("price in $$: $price", CTX) == "price in $: 2.0"
    assert resolve("$$$count", CTX) == "$10"
    assert resolve("$$$$", CTX) == "$$"


def test_embedded_missing_values_render_empty() -> None:
    assert resolve("[$nope]", CTX) == "[]"


def test_embedded_dicts_and_lists_render_as_json() -> None:
    ctx = make_ctx({"d": {"a": [1, True, None], "é": "ü"}, "l": [1.5, "x"]})
    assert resolve("d=$d l=$l", ctx) == 'd={"a": [1, true, null], "é": "ü"} l=[1.5, "x"]'


def test_embedded_numbers_and_booleans_render_like_json() -> None:
    assert resolve("$count/$price/$flag/$off", CTX) == "10/2.0/true/false"


def test_embedded_now_renders_iso() -> None:
    assert resolve("at $now", CTX) == "at 2026-11-25T16:39:48.123456+00:00"


# --- render --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (15, "15"),
        (2.0, "2.0"),
        (0.1, "0.1"),
        ("text", "text"),
        ([1, "a"], '[1, "a"]'),
        ({"k": {"n": None}}, '{"k": {"n": null}}'),
        ({}, "{}"),
        (FIXED_NOW, "2026-11-25T16:39:48.123456+00:00"),
        (date(2026, 1, 2), "2026-01-02"),
        ({"when": date(2026, 1, 2)}, '{"when": "2026-01-02"}'),
    ],
)
def test_render_gives_the_text_form(value: Any, text: str) -> None:
    assert render(value) == text


def test_render_does_not_use_an_int_subclass_repr() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    assert render(Level.HIGH) == "3"


def test_render_of_a_self_containing_list_is_an_expression_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ExpressionError, match="cannot render a list"):
        render(loop)


# --- lookup and references -----------------------------------------------------------------------


def test_lookup_reads_a_path_without_dollar() -> None:
    assert lookup("input.items.0.name", CTX) == "pen"
    assert lookup("count", CTX) == 10


@pytest.mark.parametrize("path", ["", "input..x", "input.", "1abc", "input.user-id", "$count"])
def test_lookup_rejects_a_path_that_is_not_a_reference(path: str) -> None:
    with pytest.raises(ExpressionError, match="invalid reference"):
        lookup(path, CTX)


def test_references_lists_every_path_in_order() -> None:
    value = {
        "a": "$input.amount",
        "b": ["Total: $totals.total.", {"c": "$input.amount and $items.0"}],
        "$key": "keys are not searched",
        "n": 3,
    }
    assert references(value) == ["input.amount", "totals.total", "items.0"]


def test_references_skips_escaped_dollars_and_literal_ones() -> None:
    assert references("$$input costs $5 for $user.name") == ["user.name"]


def test_references_of_a_value_without_strings_is_empty() -> None:
    assert references([1, None, {"a": 2.0}]) == []


# --- truthiness ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, False, 0, 0.0, -0.0, "", [], {}, ()])
def test_falsy_values(value: Any) -> None:
    assert is_truthy(value) is False


@pytest.mark.parametrize(
    "value", [True, 1, -1, 0.5, "0", "false", " ", [0], {"a": None}, FIXED_NOW]
)
def test_truthy_values(value: Any) -> None:
    assert is_truthy(value) is True


# --- conditions: one test per operator, true and false -------------------------------------------


def test_operators_are_exactly_the_sixteen() -> None:
    assert set(OPERATORS) == {
        "eq",
        "neq",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
        "in",
        "not_in",
        "exists",
        "empty",
        "truthy",
        "falsy",
    }
    assert len(OPERATORS) == 16


def test_eq() -> None:
    assert check("status", "eq", "active")
    assert not check("status", "eq", "inactive")
    assert check("count", "eq", 10.0)
    assert check("user.active", "eq", False)


def test_eq_keeps_booleans_apart_from_numbers_and_strings_apart_from_numbers() -> None:
    assert not check("flag", "eq", 1)
    assert not check("zero", "eq", False)
    assert not check("count", "eq", "10")
    assert not check("nil_val", "eq", False)
    assert check("nil_val", "eq", None)


def test_eq_compares_lists_and_dicts_with_the_same_rules() -> None:
    assert check("items", "eq", [1.0, 2, 3])
    assert not check("items", "eq", [True, 2, 3])
    assert check("input.user", "eq", {"name": "Ada"})
    assert not check("input.user", "eq", {"name": "Ada", "x": 1})


def test_eq_with_a_reference_value() -> None:
    ctx = make_ctx({"a": 5, "b": 5.0, "c": 6})
    assert check("a", "eq", "$b", ctx)
    assert not check("a", "eq", "$c", ctx)


def test_neq() -> None:
    assert check("status", "neq", "inactive")
    assert not check("status", "neq", "active")
    assert check("flag", "neq", 1)


def test_a_field_may_start_with_a_dollar() -> None:
    assert check("$input.amount", "eq", 150)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 5, True),
        ("gt", 15, False),
        ("gt", 10, False),
        ("gte", 10, True),
        ("gte", 11, False),
        ("lt", 15, True),
        ("lt", 10, False),
        ("lte", 10, True),
        ("lte", 9.5, False),
    ],
)
def test_ordering_operators_on_numbers(op: str, value: Any, expected: bool) -> None:
    assert check("count", op, value) is expected


def test_ordering_accepts_numeric_strings_on_either_side() -> None:
    assert check("numeric_text", "gt", 12)
    assert check("numeric_text", "eq", " 12.5 ")
    assert check("count", "lt", "1e3")
    assert check("count", "gte", "+10")
    assert check("count", "gt", ".5")
    assert check("ratio", "lte", " 12.50 ")


def test_ordering_compares_large_integer_strings_exactly() -> None:
    ctx = make_ctx({"big": 12345678901234567891})
    assert check("big", "gt", "12345678901234567890", ctx)


def test_ordering_a_huge_digit_string_is_an_error_not_a_crash() -> None:
    with pytest.raises(ExpressionError, match="cannot compare"):
        check("count", "lt", "9" * 5000)


@pytest.mark.parametrize(
    ("field", "value", "actual_text", "expected_text"),
    [
        ("status", 5, "'active' (string)", "5 (number)"),
        ("count", "abc", "10 (number)", "'abc' (string)"),
        ("nil_val", 5, "null", "5 (number)"),
        ("flag", 1, "true (boolean)", "1 (number)"),
        ("items", 1, "[1, 2, 3] (list)", "1 (number)"),
        ("user", 1, "(object)", "1 (number)"),
        ("count", "nan", "10 (number)", "'nan' (string)"),
        ("count", "inf", "10 (number)", "'inf' (string)"),
        ("count", "1_000", "10 (number)", "'1_000' (string)"),
        ("count", "12abc", "10 (number)", "'12abc' (string)"),
    ],
)
def test_ordering_a_non_number_is_an_error_naming_field_op_and_values(
    field: str, value: Any, actual_text: str, expected_text: str
) -> None:
    with pytest.raises(ExpressionError) as info:
        check(field, "gt", value)
    message = str(info.value)
    assert message.startswith("cannot compare ")
    assert actual_text in message
    assert expected_text in message
    assert f"using 'gt' in condition on '{field}'" in message
    assert info.value.facts["field"] == field
    assert info.value.facts["op"] == "gt"


def test_ordering_error_shortens_long_values() -> None:
    ctx = make_ctx({"long": "x" * 500})
    with pytest.raises(ExpressionError) as info:
        check("long", "gt", 1, ctx)
    assert "..." in str(info.value)
    assert len(str(info.value)) < 250


def test_in() -> None:
    assert check("status", "in", ["active", "pending"])
    assert not check("status", "in", ["closed", "pending"])
    assert check("count", "in", [10.0])
    assert not check("flag", "in", [1])


def test_in_with_none_a_scalar_or_a_dict() -> None:
    assert not check("status", "in", None)
    assert check("status", "in", "active")
    assert not check("status", "in", "inactive")
    assert not check("status", "in", "active and more")
    assert check("status", "in", {"active": 1, "closed": 2})
    assert not check("status", "in", {"closed": 2})


def test_not_in() -> None:
    assert check("status", "not_in", ["closed", "pending"])
    assert not check("status", "not_in", ["active", "pending"])
    assert check("status", "not_in", None)


def test_contains_on_strings() -> None:
    assert check("name", "contains", "world")
    assert not check("name", "contains", "moon")
    assert check("name", "contains", "")


def test_contains_on_lists_uses_element_equality() -> None:
    assert check("items", "contains", 2)
    assert check("items", "contains", 2.0)
    assert not check("items", "contains", "2")
    assert not check("items", "contains", 4)
    assert not check("letters", "contains", "ab")


def test_contains_on_dicts_checks_keys() -> None:
    assert check("user", "contains", "first")
    assert not check("user", "contains", "John")


def test_contains_on_none_is_false_and_on_numbers_uses_text() -> None:
    assert not check("nil_val", "contains", "")
    assert not check("nope", "contains", "x")
    assert check("count", "contains", 1)
    assert not check("count", "contains", 2)
    assert check("flag", "contains", "ru")


def test_starts_with() -> None:
    assert check("name", "starts_with", "hello")
    assert not check("name", "starts_with", "world")
    assert check("count", "starts_with", 1)
    assert not check("nil_val", "starts_with", "")


def test_ends_with() -> None:
    assert check("name", "ends_with", "world")
    assert not check("name", "ends_with", "hello")
    assert check("price", "ends_with", ".0")
    assert not check("nil_val", "ends_with", "")


def test_matches() -> None:
    assert check("name", "matches", "^hello.*")
    assert check("name", "matches", "o w")
    assert not check("name", "matches", "^world")
    assert check("count", "matches", r"^\d+$")
    assert not check("nil_val", "matches", ".*")


def test_matches_with_an_invalid_regex_is_an_error() -> None:
    with pytest.raises(ExpressionError, match=r"invalid regular expression '\(': ") as info:
        check("name", "matches", "(")
    assert info.value.facts["pattern"] == "("


def test_exists() -> None:
    assert check("status", "exists")
    assert check("off", "exists")
    assert check("zero", "exists")
    assert not check("missing", "exists")
    assert not check("nil_val", "exists")


def test_empty() -> None:
    assert check("empty_str", "empty")
    assert check("nil_val", "empty")
    assert check("user.tags", "empty")
    assert check("missing", "empty")
    assert not check("zero", "empty")
    assert not check("off", "empty")
    assert not check("name", "empty")
    assert not check("items", "empty")


def test_truthy() -> None:
    assert check("flag", "truthy")
    assert check("count", "truthy")
    assert not check("nil_val", "truthy")
    assert not check("off", "truthy")
    assert not check("zero", "truthy")
    assert not check("empty_str", "truthy")


def test_falsy() -> None:
    assert check("nil_val", "falsy")
    assert check("off", "falsy")
    assert check("zero", "falsy")
    assert check("user.tags", "falsy")
    assert not check("flag", "falsy")
    assert not check("name", "falsy")


def test_unary_operators_ignore_the_value() -> None:
    assert check("status", "exists", "$now.ignored")


def test_the_value_may_contain_interpolations() -> None:
    ctx = make_ctx({"greeting": "hello John", "first": "John"})
    assert check("greeting", "eq", "hello $first", ctx)


def test_an_unknown_operator_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ExpressionError) as info:
        check("count", "gtt", 5)
    message = str(info.value)
    assert "unknown operator 'gtt' in condition on 'count'" in message
    assert "Valid operators: eq, neq, gt" in message
    assert "Did you mean 'gt'?" in message
    assert info.value.facts["op"] == "gtt"


def test_an_unknown_operator_without_a_close_match_has_no_suggestion() -> None:
    with pytest.raises(ExpressionError) as info:
        check("count", "zzzzzz", 5)
    assert "Did you mean" not in str(info.value)


def test_a_condition_on_an_invalid_field_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="invalid reference"):
        check("input amount", "eq", 1)


def test_a_condition_error_survives_a_json_round_trip() -> None:
    with pytest.raises(ExpressionError) as info:
        check("status", "gt", 5)
    data = info.value.to_dict()
    assert data["type"] == "ExpressionError"
    assert data["field"] == "status"
    assert data["op"] == "gt"


# --- search_regex --------------------------------------------------------------------------------


def test_search_regex_searches_anywhere() -> None:
    assert search_regex("b+", "abbbc")
    assert not search_regex("^b", "abc")


def test_search_regex_runaway_pattern_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dwf.expr, "_REGEX_TIMEOUT_SECONDS", 0.05)
    with pytest.raises(ExpressionError, match="catastrophic backtracking") as info:
        search_regex("(a|aa)+$", "a" * 40 + "!")
    assert "'(a|aa)+$'" in str(info.value)
    assert info.value.facts["pattern"] == "(a|aa)+$"


def test_search_regex_invalid_pattern_is_an_error() -> None:
    with pytest.raises(ExpressionError, match=r"invalid regular expression '\[a': "):
        search_regex("[a", "a")


def test_search_regex_deeply_nested_pattern_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="nested too deeply"):
        search_regex("(" * 2000 + ")" * 2000, "a")


@given(pattern=st.text(max_size=12), text=st.text(max_size=12))
def test_search_regex_raises_nothing_but_expression_error(pattern: str, text: str) -> None:
    with contextlib.suppress(ExpressionError):
        assert search_regex(pattern, text) in (True, False)


# --- properties ----------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "input", "now", "history", "items", "x_1"])
_segments = st.one_of(_names, st.integers(0, 3).map(str), st.text(max_size=3))
_ref_like = st.lists(_segments, min_size=1, max_size=4).map(lambda parts: "$" + ".".join(parts))
_strings = st.one_of(
    st.text(),
    _ref_like,
    st.lists(st.one_of(_ref_like, st.text(max_size=4), st.just("$$")), max_size=5).map("".join),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _strings)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, variables=st.dictionaries(_names, _json, max_size=4), input=_json)
def test_resolve_raises_nothing_but_expression_error(
    value: Any, variables: dict[str, Any], input: Any
) -> None:
    ctx = make_ctx(variables, input if isinstance(input, dict) else {"v": input}, history=[1])
    try:
        result = resolve(value, ctx)
    except ExpressionError:
        return
    if isinstance(value, str) and "$" not in value:
        assert result == value
    references(value)


@settings(max_examples=200, deadline=None)
@given(
    op=st.sampled_from(OPERATORS),
    field=st.sampled_from(["a", "b", "items", "input.v", "a.0"]),
    value=_json,
    variables=st.dictionaries(_names, _json, max_size=4),
)
def test_conditions_raise_nothing_but_expression_error(
    op: str, field: str, value: Any, variables: dict[str, Any]
) -> None:
    try:
        result = evaluate_condition(field, op, value, make_ctx(variables))
    except ExpressionError:
        return
    assert isinstance(result, bool)


@given(value=st.one_of(st.integers(), st.floats(allow_nan=False)))
def test_every_number_renders_to_text_that_reads_back_as_the_same_number(value: Any) -> None:
    text = render(value)
    back = float(text) if isinstance(value, float) else int(text)
    assert back == value or (math.isinf(value) and math.isinf(back))
