"""Keep-rate schedules: accepted forms, error messages, num_kept and token counts."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab6.i18n import ScheduleError
from lab6.messages import MESSAGES
from lab6.schedule import (
    LAB_BLOCKS,
    LAB_SCHEDULE,
    format_schedule,
    num_kept,
    parse_keep_rate,
    pruning_blocks,
    token_counts,
)

LAB = (1.0, 1.0, 1.0, 0.7, 1.0, 1.0, 0.7, 1.0, 1.0, 0.7, 1.0, 1.0)
NO_PRUNING = (1.0,) * 12


def test_lab_schedule_constants():
    assert tuple(LAB_SCHEDULE) == LAB
    assert LAB_BLOCKS == (4, 7, 10)
    assert pruning_blocks(LAB_SCHEDULE) == [3, 6, 9]


@pytest.mark.parametrize(
    "spec",
    [
        LAB_SCHEDULE,
        list(LAB_SCHEDULE),
        LAB,
        (0.7, (4, 7, 10)),
        (0.7, [4, 7, 10]),
        [0.7, (10, 4, 7, 7)],
        (0.7, range(4, 11, 3)),
        ("0.7", ("4", "7", "10")),
        0.7,
        "0.7@4,7,10",
        " 0.7 @ 4 , 7 , 10 ",
        "(0.7@4,7,10)",
        "lab",
        "LAB",
        "default",
        "0.7",
        "1,1,1,0.7,1,1,0.7,1,1,0.7,1,1",
        "[1, 1, 1, 0.7, 1, 1, 0.7, 1, 1, 0.7, 1, 1]",
    ],
)
def test_parse_forms_of_lab_schedule(spec):
    schedule = parse_keep_rate(spec)
    assert schedule == LAB
    assert all(isinstance(rate, float) for rate in schedule)


@pytest.mark.parametrize("spec", [1, 1.0, "1", " 1.0 ", (1.0, (4, 7))])
def test_parse_forms_without_pruning(spec):
    assert parse_keep_rate(spec) == NO_PRUNING


def test_parse_twelve_distinct_rates():
    rates = (1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 1)
    assert parse_keep_rate(rates) == tuple(float(r) for r in rates)
    assert parse_keep_rate(",".join(str(r) for r in rates)) == tuple(float(r) for r in rates)


def test_parse_other_depth():
    assert parse_keep_rate((0.5, (2,)), depth=4) == (1.0, 0.5, 1.0, 1.0)
    assert parse_keep_rate("0.5@1,4", depth=4) == (0.5, 1.0, 1.0, 0.5)
    assert parse_keep_rate(1, depth=3) == (1.0, 1.0, 1.0)
    assert parse_keep_rate((0.9, 1, 0.8), depth=3) == (0.9, 1.0, 0.8)


def test_parse_rate_at_upper_bound():
    assert parse_keep_rate("1@4,7,10") == NO_PRUNING


# (spec, depth, key, values the exception must carry)
ERROR_CASES = [
    ("", 12, "schedule.empty", {}),
    ("   ", 12, "schedule.empty", {}),
    ("()", 12, "schedule.empty", {}),
    ((), 12, "schedule.empty", {}),
    ([], 12, "schedule.empty", {}),
    (0, 12, "schedule.bad_rate", {"value": 0}),
    (1.5, 12, "schedule.bad_rate", {"value": 1.5}),
    (-0.3, 12, "schedule.bad_rate", {"value": -0.3}),
    (float("nan"), 12, "schedule.bad_rate", {}),
    ("1.5", 12, "schedule.bad_rate", {"value": "1.5"}),
    ("0@4", 12, "schedule.bad_rate", {"value": "0"}),
    ((1,) * 11 + (0,), 12, "schedule.bad_rate", {"value": 0}),
    ("abc", 12, "schedule.not_number", {"value": "abc"}),
    ("x@4", 12, "schedule.not_number", {"value": "x"}),
    (True, 12, "schedule.bad_type", {"kind": "bool"}),
    ((1,) * 11 + (None,), 12, "schedule.not_number", {"value": None}),
    ((1,) * 11 + (True,), 12, "schedule.not_number", {"value": True}),
    ((1,) * 11, 12, "schedule.wrong_length", {"got": 11, "depth": 12}),
    ((1,) * 13, 12, "schedule.wrong_length", {"got": 13, "depth": 12}),
    ("1,0.7,1", 12, "schedule.wrong_length", {"got": 3, "depth": 12}),
    ("lab", 6, "schedule.wrong_length", {"got": 12, "depth": 6}),
    (0.7, 6, "schedule.wrong_length", {"got": 1, "depth": 6}),
    ("0.7@0", 12, "schedule.bad_block", {"value": "0", "depth": 12}),
    ("0.7@13", 12, "schedule.bad_block", {"value": "13", "depth": 12}),
    ("0.7@4,a", 12, "schedule.bad_block", {"value": "a", "depth": 12}),
    ((0.7, (4, 13)), 12, "schedule.bad_block", {"value": 13, "depth": 12}),
    ((0.7, (4.5,)), 12, "schedule.bad_block", {"value": 4.5, "depth": 12}),
    ("0.7@4@7", 12, "schedule.bad_string", {"text": "0.7@4@7", "depth": 12}),
    ("@4", 12, "schedule.bad_string", {"text": "@4", "depth": 12}),
    ("0.7@", 12, "schedule.bad_string", {"text": "0.7@", "depth": 12}),
    ("0.7,,1", 12, "schedule.bad_string", {"text": "0.7,,1", "depth": 12}),
    ((0.7, ()), 12, "schedule.no_blocks", {"depth": 12}),
    ((0.7, []), 12, "schedule.no_blocks", {"depth": 12}),
    (None, 12, "schedule.bad_type", {"kind": "NoneType", "depth": 12}),
    ({"rate": 0.7}, 12, "schedule.bad_type", {"kind": "dict", "depth": 12}),
]


@pytest.mark.parametrize("language", ["en", "zh-TW"])
@pytest.mark.parametrize(("spec", "depth", "key", "values"), ERROR_CASES)
def test_parse_error_key_and_text(lang, language, spec, depth, key, values):
    lang(language)
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(spec, depth=depth)
    error = caught.value
    assert error.key == key
    for name, value in values.items():
        assert error.values[name] == value, name
    assert str(error) == MESSAGES[language][key].format(**error.values)


def test_bad_rate_message_in_english(lang):
    lang("en")
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(1.5)
    assert str(caught.value) == (
        "Keep rate 1.5 is outside (0, 1]. Every keep rate must be greater than 0 and at most 1, for example 0.7."
    )


def test_bad_rate_message_in_chinese(lang):
    lang("zh-TW")
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(1.5)
    assert str(caught.value) == "keep rate 1.5 不在 (0, 1] 範圍內。每個 keep rate 都必須大於 0 且不超過 1，例如 0.7。"


def test_chinese_is_default(monkeypatch):
    monkeypatch.delenv("LAB6_LANG", raising=False)
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate("lab", depth=6)
    assert str(caught.value) == MESSAGES["zh-TW"]["schedule.wrong_length"].format(got=12, depth=6)
    assert "block" in str(caught.value)
    assert "模型有 6 個" in str(caught.value)


def test_wrong_length_message_in_english(lang):
    lang("en_US")
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate((1,) * 11)
    assert "11 values" in str(caught.value)
    assert "12 blocks" in str(caught.value)


def test_schedule_error_is_value_error():
    with pytest.raises(ValueError):
        parse_keep_rate("nope")


# Rates whose float product with a token count lands just above an integer.
FLOAT_TRAPS = [
    (0.55, 101, 55),
    (0.55, 201, 110),
    (0.07, 101, 7),
    (0.14, 51, 7),
    (0.14, 201, 28),
    (0.28, 101, 28),
    (0.56, 101, 56),
    (0.56, 51, 28),
]


@pytest.mark.parametrize(("rate", "tokens", "expected"), FLOAT_TRAPS)
def test_num_kept_float_traps(rate, tokens, expected):
    assert math.ceil(rate * (tokens - 1)) == expected + 1  # the trap is real in float arithmetic
    assert num_kept(rate, tokens) == expected


def test_num_kept_lab_blocks():
    assert num_kept(0.7, 197) == 138  # ceil(137.2)
    assert num_kept(0.7, 140) == 98  # ceil(97.3)
    assert num_kept(0.7, 100) == 70  # ceil(69.3)
    assert num_kept(0.7, 139) == 97  # ceil(96.6)
    assert num_kept(0.7, 98) == 68  # ceil(67.9)


def test_num_kept_bounds():
    assert num_kept(1.0, 197) == 196
    assert num_kept(0.001, 197) == 1
    assert num_kept(1e-9, 3) == 1


@settings(max_examples=300, deadline=None)
@given(thousandths=st.integers(min_value=1, max_value=1000), tokens=st.integers(min_value=2, max_value=1000))
def test_num_kept_matches_exact_fraction(thousandths, tokens):
    rate = float(f"{thousandths / 1000:.3f}")
    exact = Fraction(thousandths, 1000) * (tokens - 1)
    assert num_kept(rate, tokens) == min(tokens - 1, max(1, math.ceil(exact)))


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(min_value=1e-6, max_value=1.0), tokens=st.integers(min_value=2, max_value=1000))
def test_num_kept_within_bounds(rate, tokens):
    kept = num_kept(rate, tokens)
    assert 1 <= kept <= tokens - 1
    assert kept >= rate * (tokens - 1) - 1e-9 * tokens


def test_token_counts_lab_with_fusion():
    counts = token_counts(LAB_SCHEDULE)
    assert [counts[i] for i in (3, 6, 9)] == [140, 100, 72]
    assert counts == [197, 197, 197, 140, 140, 140, 100, 100, 100, 72, 72, 72]


def test_token_counts_lab_without_fusion():
    counts = token_counts(LAB_SCHEDULE, fuse=False)
    assert [counts[i] for i in (3, 6, 9)] == [139, 98, 69]
    assert counts == [197, 197, 197, 139, 139, 139, 98, 98, 98, 69, 69, 69]


def test_token_counts_without_pruning():
    assert token_counts(NO_PRUNING) == [197] * 12


def test_token_counts_skip_block_that_drops_nothing():
    # With 3 tokens (CLS and 2 image tokens), rate 0.9 keeps ceil(1.8) = 2: nothing to drop.
    assert token_counts((0.9, 0.4), num_patches=2) == [3, 3]
    assert token_counts((0.4, 0.9), num_patches=2, fuse=False) == [2, 2]


def test_format_schedule():
    assert format_schedule(LAB_SCHEDULE) == "0.7@4,7,10"
    assert format_schedule(NO_PRUNING) == "1"
    mixed = (1, 0.9, 1, 0.5) + (1,) * 8
    assert format_schedule(mixed) == "1,0.9,1,0.5,1,1,1,1,1,1,1,1"
    assert parse_keep_rate(format_schedule(mixed)) == tuple(float(r) for r in mixed)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("(0.7, (4, 7))", "schedule.bad_string"),
        ("[0.7, [4]]", "schedule.bad_string"),
        ("0.7@(4)", "schedule.bad_string"),
    ],
)
def test_parse_nested_brackets_rejected(spec, key):
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(spec)
    assert caught.value.key == key
    assert caught.value.values["text"] == spec


def test_parse_long_input_cut_in_message(lang):
    lang("en")
    for spec in ("1" * 5000, "x" * 5000 + "@4", "0.7@" + "9" * 5000, "0.7@4@" + "7" * 5000):
        with pytest.raises(ScheduleError) as caught:
            parse_keep_rate(spec)
        message = str(caught.value)
        assert len(message) < 400, (spec[:20], len(message))
        assert "..." in message


def test_parse_keeps_input_case_in_message():
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate("None")
    assert caught.value.key == "schedule.not_number"
    assert caught.value.values["value"] == "None"


def test_parse_wrong_count_before_bad_value():
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate((0.7, 4))
    assert caught.value.key == "schedule.wrong_length"
    assert caught.value.values == {"got": 2, "depth": 12}


def test_parse_numpy_and_torch_schedules():
    import numpy as np
    import torch

    assert parse_keep_rate(np.array(LAB)) == LAB
    assert parse_keep_rate(torch.tensor(LAB, dtype=torch.float64)) == LAB
    assert parse_keep_rate(torch.tensor(1.0)) == NO_PRUNING
    assert parse_keep_rate(np.float64(0.7)) == LAB
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(np.ones(11))
    assert caught.value.key == "schedule.wrong_length"
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate(torch.zeros(12))
    assert caught.value.key == "schedule.bad_rate"


def test_parse_unicode_digits_read_as_numbers():
    # Python's float() and int() read any Unicode decimal digits, e.g. full-width ones.
    assert parse_keep_rate("０.７@４,７,１０") == LAB
    with pytest.raises(ScheduleError) as caught:
        parse_keep_rate("１,１")
    assert caught.value.key == "schedule.wrong_length"
    assert caught.value.values["got"] == 2


def test_parse_repeated_block_prunes_once():
    assert parse_keep_rate("0.7@4,4,4") == parse_keep_rate("0.7@4")
