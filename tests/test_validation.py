"""JSON extraction from LLM text and pydantic validation."""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from adaptive_router import ErrorKind
from adaptive_router.validation import (
    MAX_RAW_CHARS,
    OutputValidationError,
    extract_json,
    parse_output,
)


class Item(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class Order(BaseModel):
    order_id: int
    customer: str
    items: list[Item] = []


class Point(TypedDict):
    x: int
    y: int


ORDER = '{"order_id": 7, "customer": "Ada", "items": [{"sku": "A-1", "qty": 2}]}'


# -- extract_json: where the JSON is ------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n {"a": 1} \n', {"a": 1}),
        ("[1, 2, 3]", [1, 2, 3]),
        ('"just a string"', "just a string"),
        ("42", 42),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```JSON\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('```{"a": 1}```', {"a": 1}),
        ('```json {"a": 1}```', {"a": 1}),
        ('Here you go:\n```json\n[{"a": 1}, {"b": 2}]\n```\nAnything else?', [{"a": 1}, {"b": 2}]),
        ('Sure! The result is {"a": 1}', {"a": 1}),
        ('{"a": 1}\nLet me know if you need more.', {"a": 1}),
        ('Result: {"a": 1}. Done.', {"a": 1}),
        ("The list: [1, 2] is sorted.", [1, 2]),
        ('prose {"a": "}{ ][", "b": "\\"}"} more', {"a": "}{ ][", "b": '"}'}),
        ('x {"a": {"b": {"c": [1, {"d": null}]}}} y', {"a": {"b": {"c": [1, {"d": None}]}}}),
        ('Use { for objects, like this: {"a": 1}', {"a": 1}),
        ('He said "hi {" then {"a": 1}', {"a": 1}),
        ('```python\nd = {"a": 1}\n```\n```json\n{"b": 2}\n```', {"b": 2}),
        ('first {"a": 1} then {"b": 2}', {"a": 1}),
        ("\ufeff" + '{"a": 1}', {"a": 1}),
    ],
)
def test_extract_json_finds_the_json(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": 1,}', "invalid JSON"),
        ("[1, 2,]", "invalid JSON"),
        ('```json\n{"a": 1,}\n```', "invalid JSON"),
        ("{'a': 1}", "no JSON"),
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": Infinity}', "Infinity is not valid JSON"),
        ("no json here at all", "no JSON"),
        ("The answer is 42.", "no JSON"),
        ('{"order": {"id": 1, "items": [', "never closed"),
        ('Here: {"a": "unterminated', "never closed"),
        ("[" * 3000, "never closed"),
    ],
)
def test_extract_json_rejects_invalid_json(text: str, reason: str) -> None:
    with pytest.raises(OutputValidationError, match=reason) as info:
        extract_json(text)
    assert info.value.kind == "invalid_output"
    assert info.value.raw == text


def test_inner_object_of_a_broken_outer_one_is_not_returned() -> None:
    # The trailing comma breaks the outer object; {"y": 1} inside it parses but is not the answer.
    with pytest.raises(OutputValidationError, match="invalid JSON"):
        extract_json('{"items": [1, 2,], "x": {"y": 1}}')
    # A truncated reply is an error even though a complete inner object is there.
    with pytest.raises(OutputValidationError, match="truncated"):
        extract_json('{"order": {"sku": "A"}, "items": [{"sku": "B"}, {"sku": ')


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n", None])
def test_empty_text_has_its_own_kind(text: str | None) -> None:
    with pytest.raises(OutputValidationError) as info:
        extract_json(text)
    assert info.value.kind == "empty" == ErrorKind.EMPTY.value
    with pytest.raises(OutputValidationError) as info:
        parse_output(text, Order)
    assert info.value.kind == "empty"


def test_non_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        extract_json(b'{"a": 1}')  # type: ignore[arg-type]


# -- parse_output ---------------------------------------------------------------------------------
def test_parse_output_returns_a_valid_model() -> None:
    order = parse_output(f"Here is the order:\n```json\n{ORDER}\n```", Order)
    assert isinstance(order, Order)
    assert order.order_id == 7
    assert order.items == [Item(sku="A-1", qty=2)]


def test_schema_failure_raises_and_returns_nothing() -> None:
    text = '{"order_id": "seven", "customer": "Ada", "items": [{"sku": "A-1", "qty": 0}]}'
    result: Any = None
    with pytest.raises(OutputValidationError) as info:
        result = parse_output(text, Order)
    assert result is None
    err = info.value
    assert isinstance(err, ValueError)
    assert err.kind == "invalid_output" == ErrorKind.INVALID_OUTPUT.value
    assert err.raw == text
    assert "Order" in str(err) and "2 validation errors" in str(err)
    assert "order_id" in str(err) and "items.0.qty" in str(err)
    assert err.errors is not None and {tuple(e["loc"]) for e in err.errors} == {
        ("order_id",),
        ("items", 0, "qty"),
    }
    assert all("input" not in e for e in err.errors)


def test_missing_field_is_rejected() -> None:
    with pytest.raises(OutputValidationError, match="customer: Field required"):
        parse_output('{"order_id": 1}', Order)


def test_message_truncates_raw_text_but_raw_keeps_it_all() -> None:
    text = '{"order_id": 1}' + " padding" * 200
    with pytest.raises(OutputValidationError) as info:
        parse_output(text, Order)
    message = str(info.value)
    assert info.value.raw == text
    assert len(message) < len(text)
    assert f"{len(text)} chars" in message
    assert "more chars]" in message
    assert text[:MAX_RAW_CHARS] in message
    assert text not in message


def test_model_schema_prefers_an_object_over_an_earlier_array() -> None:
    text = f"According to [1] and [2], the order is {ORDER}"
    assert extract_json(text) == [1]
    assert parse_output(text, Order).order_id == 7


def test_array_for_an_object_schema_is_invalid() -> None:
    with pytest.raises(OutputValidationError, match=r"Input should be an object|valid dictionary"):
        parse_output(f"[{ORDER}]", Order)


def test_list_schema_and_type_adapter() -> None:
    text = 'Items:\n```\n[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}]\n```'
    items = parse_output(text, list[Item])
    assert [i.qty for i in items] == [1, 3]
    assert parse_output(text, TypeAdapter(list[Item])) == items
    with pytest.raises(OutputValidationError, match=r"1\.qty"):
        parse_output('[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}]', list[Item])


def test_typed_dict_and_plain_json() -> None:
    assert parse_output('point: {"x": 1, "y": 2}', Point) == {"x": 1, "y": 2}
    assert parse_output('```json\n{"any": [1, "thing"]}\n```') == {"any": [1, "thing"]}
    assert parse_output("{}", dict[str, int]) == {}


def test_strict_mode_is_passed_through() -> None:
    assert parse_output('{"sku": "a", "qty": "2"}', Item).qty == 2
    with pytest.raises(OutputValidationError, match="qty"):
        parse_output('{"sku": "a", "qty": "2"}', Item, strict=True)


def test_error_survives_pickling() -> None:
    with pytest.raises(OutputValidationError) as info:
        parse_output('{"order_id": "x"}', Order)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.kind, copy.raw, copy.reason, copy.errors) == (
        info.value.kind,
        info.value.raw,
        info.value.reason,
        info.value.errors,
    )
    assert str(copy) == str(info.value)


def test_failures_are_logged_with_truncated_raw_text(caplog: pytest.LogCaptureFixture) -> None:
    text = "not json " * 100
    with (
        caplog.at_level(logging.INFO, logger="adaptive_router.validation"),
        pytest.raises(OutputValidationError),
    ):
        extract_json(text)
    [record] = caplog.records
    assert record.name == "adaptive_router.validation"
    assert "no JSON" in record.getMessage()
    assert text not in record.getMessage()
    assert getattr(record, "kind", None) == "invalid_output"


# -- properties ------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
# Prose that cannot itself contain JSON or fences.
prose = st.text(
    alphabet=st.characters(blacklist_characters='{}[]"`', blacklist_categories=("Cs",)),
    max_size=40,
)


@settings(max_examples=100, deadline=None)
@given(
    value=json_objects,
    before=prose,
    after=prose,
    tag=st.sampled_from(["", "json", "JSON"]),
    indent=st.sampled_from([None, 2]),
)
def test_fenced_object_with_prose_round_trips(
    value: dict[str, Any], before: str, after: str, tag: str, indent: int | None
) -> None:
    text = f"{before}\n```{tag}\n{json.dumps(value, indent=indent)}\n```\n{after}"
    assert extract_json(text) == value


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(json_objects, st.lists(json_values, max_size=4)), before=prose, after=prose)
def test_bare_json_with_prose_round_trips(value: Any, before: str, after: str) -> None:
    text = f"{before} {json.dumps(value, ensure_ascii=False)} {after}"
    assert extract_json(text) == value


@settings(max_examples=100, deadline=None)
@given(value=json_objects.filter(bool), cut=st.integers(min_value=1))
def test_truncated_object_is_never_accepted(value: dict[str, Any], cut: int) -> None:
    text = json.dumps(value)
    truncated = text[: cut % (len(text) - 1) + 1] if len(text) > 2 else text[:1]
    with pytest.raises(OutputValidationError):
        extract_json("Answer: " + truncated)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_returns_or_raises_cleanly(text: str) -> None:
    try:
        extract_json(text)
    except OutputValidationError as exc:
        assert exc.kind in ("empty", "invalid_output")
        assert exc.raw == text
