"""Tests for the transform step's operations (ported from the original's transform_test.rb)."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dwf.errors import ExpressionError
from dwf.transform_ops import OPERATIONS, apply_transform, check_expression

PEOPLE = [
    {"name": "Ann", "email": "ann@example.com", "active": True, "deleted": False, "age": 30},
    {"name": "Bob", "email": "bob@example.com", "active": False, "deleted": True, "age": 25},
    {"name": "Cy", "email": "cy@example.com", "active": True, "deleted": False, "age": 41},
]


def run(data: Any, expression: dict[str, Any], step_id: str | None = None) -> Any:
    return apply_transform(data, expression, step_id=step_id)


# Ported from the original's transform_test.rb


def test_map_reads_a_field_from_each_element() -> None:
    assert run([{"value": 1}, {"value": 2}], {"map": "value"}) == [1, 2]


def test_select_keeps_the_two_active_items() -> None:
    assert [p["name"] for p in run(PEOPLE, {"select": {"active": True}})] == ["Ann", "Cy"]


def test_reject_drops_deleted_items() -> None:
    items = [{"id": 1, "deleted": True}, {"id": 2, "deleted": False}]
    assert run(items, {"reject": {"deleted": True}}) == [{"id": 2, "deleted": False}]


def test_pluck_reads_emails() -> None:
    assert run(PEOPLE, {"pluck": "email"}) == [
        "ann@example.com",
        "bob@example.com",
        "cy@example.com",
    ]


def test_first_two_returns_a_list_of_two() -> None:
    assert run([1, 2, 3, 4, 5], {"first": 2}) == [1, 2]


def test_last_two_returns_a_list_of_the_last_two() -> None:
    assert run([1, 2, 3, 4, 5], {"last": 2}) == [4, 5]


def test_compact_drops_nulls() -> None:
    assert run([1, None, 2, None], {"compact": None}) == [1, 2]


def test_uniq_keeps_first_occurrences() -> None:
    assert run([1, 2, 1, 3, 2], {"uniq": None}) == [1, 2, 3]


def test_reverse_reverses_a_list() -> None:
    assert run([1, 2, 3], {"reverse": None}) == [3, 2, 1]


def test_count_counts_five_items() -> None:
    assert run([1, 2, 3, 4, 5], {"count": None}) == 5


def test_sum_of_integers_is_an_integer() -> None:
    result = run([1, 2, 3, 4], {"sum": None})
    assert result == 10
    assert type(result) is int


def test_keys_are_strings() -> None:
    assert run({"a": 1, "b": 2, "c": 3}, {"keys": None}) == ["a", "b", "c"]


def test_values_lists_dict_values() -> None:
    assert run({"a": 1, "b": 2, "c": 3}, {"values": None}) == [1, 2, 3]


def test_pick_keeps_the_named_keys() -> None:
    assert run({"a": 1, "b": 2, "c": 3}, {"pick": ["a", "c"]}) == {"a": 1, "c": 3}


def test_omit_drops_the_named_keys() -> None:
    assert run({"a": 1, "b": 2, "c": 3}, {"omit": ["b"]}) == {"a": 1, "c": 3}


def test_merge_adds_the_argument_keys() -> None:
    assert run({"a": 1}, {"merge": {"d": 4}}) == {"a": 1, "d": 4}


def test_chained_compact_uniq_count_gives_three() -> None:
    assert run([1, None, 2, 2, 3, None], {"compact": None, "uniq": None, "count": None}) == 3


# Semantics the original got wrong


def test_select_matches_a_stored_false() -> None:
    assert [p["name"] for p in run(PEOPLE, {"select": {"active": False}})] == ["Bob"]


def test_select_needs_every_condition_to_match() -> None:
    found = run(PEOPLE, {"select": {"active": True, "age": 41}})
    assert [p["name"] for p in found] == ["Cy"]


def test_select_does_not_treat_true_as_one() -> None:
    assert run([{"x": 1}, {"x": True}], {"select": {"x": True}}) == [{"x": True}]


def test_select_treats_one_and_one_point_zero_as_equal() -> None:
    assert run([{"x": 1}, {"x": 2}], {"select": {"x": 1.0}}) == [{"x": 1}]


def test_map_reads_false_zero_and_empty_string_as_values() -> None:
    items = [{"v": False}, {"v": 0}, {"v": ""}, {}]
    assert run(items, {"map": "v"}) == [False, 0, "", None]


def test_map_follows_dotted_paths_through_dicts_and_list_indexes() -> None:
    items = [{"user": {"tags": ["a", "b"]}}, {"user": {"tags": []}}, {"user": "text"}]
    assert run(items, {"map": "user.tags.1"}) == ["b", None, None]


def test_map_never_calls_methods() -> None:
    assert run(["abc", {"x": 1}], {"map": "upper"}) == [None, None]
    assert run([{"x": 1}], {"map": "keys"}) == [None]


def test_first_without_argument_returns_the_first_element() -> None:
    assert run([7, 8, 9], {"first": None}) == 7


def test_last_without_argument_returns_the_last_element() -> None:
    assert run([7, 8, 9], {"last": None}) == 9


def test_first_and_last_of_an_empty_list_without_argument_are_none() -> None:
    assert run([], {"first": None}) is None
    assert run([], {"last": None}) is None


def test_first_and_last_zero_return_empty_lists() -> None:
    assert run([1, 2], {"first": 0}) == []
    assert run([1, 2], {"last": 0}) == []


def test_last_more_than_the_length_returns_the_whole_list() -> None:
    assert run([1, 2], {"last": 5}) == [1, 2]


def test_flatten_defaults_to_one_level() -> None:
    assert run([1, [2, [3, [4]]]], {"flatten": None}) == [1, 2, [3, [4]]]


def test_flatten_takes_a_depth() -> None:
    assert run([1, [2, [3, [4]]]], {"flatten": 2}) == [1, 2, 3, [4]]


def test_flatten_true_flattens_fully() -> None:
    assert run([1, [2, [3, [4]]]], {"flatten": True}) == [1, 2, 3, 4]


def test_uniq_works_for_dicts_and_lists() -> None:
    data = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, [1, 2], [1, 2], {"a": 2}]
    assert run(data, {"uniq": None}) == [{"a": 1, "b": 2}, [1, 2], {"a": 2}]


def test_uniq_keeps_true_and_one_apart() -> None:
    assert run([1, True, 1.0, False, 0], {"uniq": None}) == [1, True, False, 0]


def test_reverse_reverses_a_string() -> None:
    assert run("abc", {"reverse": True}) == "cba"


def test_sort_orders_naturally() -> None:
    assert run([3, 1, 2.5], {"sort": None}) == [1, 2.5, 3]


def test_sort_puts_nones_last() -> None:
    assert run([3, None, 1, None, 2], {"sort": None}) == [1, 2, 3, None, None]


def test_sort_by_path_puts_missing_values_last_in_original_order() -> None:
    items = [{"id": "a"}, {"id": "b", "n": 2}, {"id": "c", "n": None}, {"id": "d", "n": 1}]
    assert [i["id"] for i in run(items, {"sort": "n"})] == ["d", "b", "a", "c"]


def test_sum_with_a_float_is_a_float() -> None:
    result = run([1, 2.0], {"sum": None})
    assert result == 3.0
    assert type(result) is float


def test_sum_by_path_counts_nones_as_zero() -> None:
    assert run([{"n": 2}, {}, {"n": None}, {"n": 3}], {"sum": "n"}) == 5


def test_sum_of_an_empty_list_is_zero() -> None:
    assert run([], {"sum": None}) == 0


def test_count_counts_dicts_and_strings_and_none_as_zero() -> None:
    assert run({"a": 1, "b": 2}, {"count": None}) == 2
    assert run("hello", {"count": None}) == 5
    assert run(None, {"count": None}) == 0


def test_pick_accepts_a_single_name_and_ignores_missing_keys() -> None:
    assert run({"a": 1, "b": 2}, {"pick": "a"}) == {"a": 1}
    assert run({"a": 1}, {"pick": ["a", "zzz"]}) == {"a": 1}


def test_omit_accepts_a_single_name() -> None:
    assert run({"a": 1, "b": 2}, {"omit": "a"}) == {"b": 2}


def test_merge_lets_the_argument_win() -> None:
    assert run({"a": 1, "b": 2}, {"merge": {"b": 3}}) == {"a": 1, "b": 3}


def test_operations_apply_in_mapping_order() -> None:
    data = [{"n": 3}, {"n": 1}, {"n": 2}]
    assert run(data, {"sort": "n", "map": "n", "last": None}) == 3
    assert run(data, {"map": "n", "last": None}) == 2


def test_input_data_is_never_mutated() -> None:
    data = {"items": [[3, None], [1, [2]]], "meta": {"a": 1}}
    before = copy.deepcopy(data)
    run(data["items"], {"flatten": True, "compact": None, "sort": None, "reverse": None})
    merged = run(data["meta"], {"merge": {"b": 2}})
    assert data == before
    merged["a"] = 99
    assert data["meta"] == {"a": 1}


def test_result_shares_no_objects_with_the_input() -> None:
    data = [{"tags": ["x"]}]
    result = run(data, {"first": None})
    result["tags"].append("y")
    assert data == [{"tags": ["x"]}]


def test_operations_are_listed_in_documentation_order() -> None:
    documented = (
        "map select reject pluck first last flatten compact uniq reverse sort count sum"
        " keys values pick omit merge"
    )
    assert tuple(documented.split()) == OPERATIONS


# Errors


@pytest.mark.parametrize(
    ("data", "expression", "message"),
    [
        ({"a": 1}, {"map": "a"}, "transform 'map' expects a list, got dict"),
        ({"a": 1}, {"select": {"a": 1}}, "transform 'select' expects a list, got dict"),
        ("abc", {"first": 1}, "transform 'first' expects a list, got string"),
        (None, {"compact": None}, "transform 'compact' expects a list, got null"),
        ([1], {"keys": None}, "transform 'keys' expects a dict, got list"),
        ([1], {"values": None}, "transform 'values' expects a dict, got list"),
        ([1], {"pick": "a"}, "transform 'pick' expects a dict, got list"),
        ([1], {"omit": "a"}, "transform 'omit' expects a dict, got list"),
        ([1], {"merge": {"a": 1}}, "transform 'merge' expects a dict, got list"),
        ({"a": 1}, {"reverse": None}, "transform 'reverse' expects a list or string, got dict"),
        (5, {"count": None}, "transform 'count' expects a list, dict or string, got int"),
        ([1, "2"], {"sum": None}, "transform 'sum' expects numbers, got string at index 1"),
        ([1, True], {"sum": None}, "transform 'sum' expects numbers, got bool at index 1"),
        ([{"n": "x"}], {"sum": "n"}, "transform 'sum' expects numbers at 'n', got string at"),
        ([1, "a"], {"sort": None}, "transform 'sort' cannot order number and string values"),
        ([{"n": 1}, {"n": "a"}], {"sort": "n"}, "cannot order number and string values together"),
        ([[1], [2]], {"sort": None}, "transform 'sort' can only order numbers, strings or"),
    ],
)
def test_wrong_input_types_raise_expression_errors(
    data: Any, expression: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        run(data, expression)
    assert message in str(caught.value)


def test_errors_name_the_step() -> None:
    with pytest.raises(ExpressionError) as caught:
        run({"a": 1}, {"sum": None}, step_id="totals")
    assert str(caught.value) == "step 'totals': transform 'sum' expects a list, got dict"
    assert caught.value.facts == {"step_id": "totals", "operation": "sum"}


def test_unknown_operation_suggests_a_name_and_lists_the_valid_ones() -> None:
    with pytest.raises(ExpressionError) as caught:
        run([1], {"mapp": "x"}, step_id="s")
    message = str(caught.value)
    assert message.startswith("step 's': unknown transform operation 'mapp'")
    assert "(did you mean 'map'?)" in message
    assert "valid operations: map, select, reject" in message


def test_unknown_operation_fails_before_any_operation_runs() -> None:
    with pytest.raises(ExpressionError, match="unknown transform operation 'frobnicate'"):
        run({"a": 1}, {"keys": None, "frobnicate": None})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"first": "two"}, "transform 'first' takes a non-negative integer, got 'two'"),
        ({"last": -1}, "transform 'last' takes a non-negative integer, got -1"),
        ({"first": True}, "transform 'first' takes a non-negative integer, got true"),
        ({"flatten": "deep"}, "transform 'flatten' takes a non-negative integer depth or true"),
        ({"map": 3}, "transform 'map' takes a path such as 'user.email', got 3"),
        ({"map": "$email"}, "transform 'map' takes a bare path: write 'email', not '$email'"),
        ({"pluck": "a..b"}, "transform 'pluck' path 'a..b' has an empty segment"),
        ({"sort": ""}, "transform 'sort' path '' has an empty segment"),
        ({"select": []}, "transform 'select' takes a non-empty mapping of path to value, got []"),
        ({"reject": {}}, "transform 'reject' takes a non-empty mapping of path to value, got {}"),
        ({"select": {"$x": 1}}, "transform 'select' takes a bare path: write 'x'"),
        ({"compact": 3}, "transform 'compact' takes no argument, got 3"),
        ({"count": False}, "transform 'count' takes no argument, got false"),
        ({"pick": 1}, "transform 'pick' takes a key name or a list of key names, got 1"),
        ({"omit": ["a", 2]}, "transform 'omit' takes a key name or a list of key names"),
        ({"merge": "x"}, "transform 'merge' takes a mapping, got 'x'"),
    ],
)
def test_bad_arguments_raise_expression_errors(expression: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        run([1, 2], expression)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ([], "transform expression must be a mapping of operation to argument, got list"),
        ({}, "transform expression has no operations"),
    ],
)
def test_malformed_expressions_raise_expression_errors(expression: Any, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        run([1], expression)
    assert str(caught.value) == message


def test_long_arguments_are_shortened_in_messages() -> None:
    with pytest.raises(ExpressionError) as caught:
        run([1], {"first": "x" * 200})
    assert len(str(caught.value)) < 100
    assert str(caught.value).endswith("...")


# check_expression


def test_check_expression_accepts_a_valid_expression() -> None:
    expression = {
        "select": {"active": True, "user.age": 3},
        "sort": "user.age",
        "pluck": "email",
        "compact": None,
        "uniq": True,
        "first": 3,
    }
    assert check_expression(expression) == []


@pytest.mark.parametrize("operation", OPERATIONS)
def test_check_expression_knows_every_operation(operation: str) -> None:
    assert not any("unknown" in p for p in check_expression({operation: None}))


def test_check_expression_reports_every_problem_with_a_suggestion() -> None:
    assert check_expression({"mapp": "x", "first": "two", "count": None}) == [
        "unknown operation 'mapp' (did you mean 'map'?)",
        "'first' takes a non-negative integer, got 'two'",
    ]


def test_check_expression_lists_valid_operations_when_nothing_is_close() -> None:
    [problem] = check_expression({"zzzzzz": None})
    assert problem.startswith("unknown operation 'zzzzzz' (valid: map, select,")


def test_check_expression_reports_a_non_mapping() -> None:
    assert check_expression(["map"]) == [  # type: ignore[arg-type]
        "expression must be a mapping of operation to argument, got list"
    ]


def test_check_expression_reports_an_empty_expression() -> None:
    assert check_expression({}) == ["expression has no operations"]


def test_check_expression_reports_a_dollar_path() -> None:
    assert check_expression({"sum": "$price"}) == [
        "'sum' takes a bare path: write 'price', not '$price'"
    ]


def test_uniq_handles_values_that_are_not_json() -> None:
    when = datetime.date(2024, 1, 1)
    assert run([when, {1, 2}, when, {1, 2}], {"uniq": None}) == [when, {1, 2}]


def test_sort_orders_booleans() -> None:
    assert run([True, None, False], {"sort": None}) == [False, True, None]


def test_sum_of_a_huge_integer_and_a_float_raises_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="transform 'sum' cannot add"):
        run([1.5, 10**400], {"sum": None})


# Property: nothing but ExpressionError escapes

json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "0", "1"]), children, max_size=4)
    ),
    max_leaves=20,
)
paths = st.sampled_from(["a", "b", "a.b", "0", "a.0", "c.1.a", "", "$a", "a..b"])
arguments = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=4),
    paths,
    st.lists(paths, max_size=3),
    st.dictionaries(paths, json_data, max_size=2),
    json_data,
)
expressions = st.dictionaries(
    st.sampled_from([*OPERATIONS, "mapp", "nope"]), arguments, min_size=1, max_size=4
)


@settings(max_examples=400, deadline=None)
@given(data=json_data, expression=expressions)
def test_random_data_through_random_operations_raises_only_expression_errors(
    data: Any, expression: dict[str, Any]
) -> None:
    before = copy.deepcopy(data)
    problems = check_expression(expression)
    message = None
    try:
        apply_transform(data, expression, step_id="p")
    except ExpressionError as exc:
        message = str(exc)
    assert data == before
    if message is None:
        assert problems == []
    else:
        assert message.startswith("step 'p': ")
