"""Distinct-count sketches: exact while small, within HyperLogLog's error beyond, and safe to merge
any number of times in any order (what lets the processor update them at least once)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from .conftest import load_package

sk = load_package("clickstream_common", "sketch").sketch
Sketch = sk.Sketch

VALUES = st.sets(st.text(min_size=1, max_size=12), max_size=150)


@given(VALUES)
def test_up_to_the_exact_limit_the_count_is_exact(values: set[str]) -> None:
    sketch = Sketch.of(values)
    if len(values) <= sk.EXACT_LIMIT:
        assert sketch.count() == len(values) and sketch.registers is None
    else:
        assert sketch.registers is not None


@given(VALUES, VALUES, VALUES)
def test_merging_is_commutative_associative_and_idempotent(a: set[str], b: set[str], c: set[str]) -> None:
    x, y, z = Sketch.of(a), Sketch.of(b), Sketch.of(c)
    assert x.merge(y) == y.merge(x)
    assert x.merge(y).merge(z) == x.merge(y.merge(z))
    assert x.merge(x) == x and x.merge(y).merge(y) == x.merge(y)
    assert x.merge(y) == Sketch.of(a | b)


@given(VALUES)
def test_a_sketch_survives_being_stored(values: set[str]) -> None:
    sketch = Sketch.of(values)
    assert Sketch.loads(sketch.dumps()) == sketch
    assert len(sketch.dumps()) <= 1 + sk.REGISTERS


@pytest.mark.parametrize("distinct", [65, 500, 5_000, 50_000, 500_000])
def test_beyond_the_exact_limit_the_estimate_is_within_four_standard_errors(distinct: int) -> None:
    estimate = Sketch.of(f"user-{i}" for i in range(distinct)).count()
    assert abs(estimate - distinct) <= 4 * 0.0325 * distinct, f"{estimate} estimated for {distinct}"


def test_a_stored_sketch_that_is_not_one_is_refused() -> None:
    for data in (b"", b"X123", b"E1234567", b"H" + bytes(10)):
        with pytest.raises(ValueError):
            Sketch.loads(data)
