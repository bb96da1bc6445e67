"""Ratios of two noisy estimates and "within noise" (analysis.uncertainty), against hand
computations."""

import math

import pytest

from analysis.uncertainty import format_ratio, ratio, within_noise


def test_a_ratio_carries_both_standard_errors_to_first_order():
    # the case: classifier.1 traces 71.57 ± 17 and 71.2 ± 15
    r = ratio(71.57, 17.0, 71.2, 15.0)
    by_hand = (71.2 / 71.57) * math.sqrt((17.0 / 71.57) ** 2 + (15.0 / 71.2) ** 2)
    assert r.value == pytest.approx(0.99483, abs=1e-5)
    assert r.error == pytest.approx(by_hand) and r.error == pytest.approx(0.3159, abs=1e-4)
    assert not r.differs_from_one and format_ratio(r) == "0.995 ± 0.32"
    sharper = ratio(2.0, 0.1, 4.0, 0.2)  # 2 ± 0.1414: clearly above 1
    assert sharper.error == pytest.approx(2 * math.sqrt(0.05**2 + 0.05**2))
    assert sharper.differs_from_one


def test_a_zero_numerator_keeps_its_absolute_error_and_a_noisy_denominator_gives_no_ratio():
    assert ratio(4.0, 0.5, 0.0, 0.3).error == pytest.approx(0.3 / 4.0)
    assert ratio(1.0, 0.6, 3.0, 0.1) is None  # 1 < 2 * 0.6: the first is not clearly positive
    assert ratio(-0.2, 0.01, 1.0, 0.1) is None and ratio(None, 0, 1.0, 0.1) is None
    assert format_ratio(None) == "-"
    assert format_ratio(ratio(2.0, 0.0, 3.0, 0.0, marked=True)) == "1.5 ± 0?"


def test_within_noise_is_below_two_standard_errors():
    assert within_noise(-0.23, 0.4) and within_noise(0.79, 0.4)
    assert not within_noise(0.8, 0.4) and not within_noise(-1.0, 0.4)
    assert not within_noise(1.0, None)
