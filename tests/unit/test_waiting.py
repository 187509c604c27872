"""tests/waiting.py: the tests' polling helper."""

import itertools
import time

import pytest
from waiting import wait_until


def test_returns_the_first_truthy_value():
    calls = itertools.count(1)
    assert wait_until(lambda: (n := next(calls)) >= 3 and f"call {n}", 30, "three calls", interval=0.001) == "call 3"


def test_a_condition_never_met_fails_naming_what_and_the_explanation():
    seen = []
    start = time.monotonic()
    with pytest.raises(AssertionError) as raised:
        wait_until(lambda: seen.append(1), 0.2, "the moon to turn blue", lambda: f"polled {len(seen)} times",
                   interval=0.01)
    assert time.monotonic() - start >= 0.2
    assert str(raised.value) == f"timed out after 0.2 s waiting for the moon to turn blue: polled {len(seen)} times"
    assert len(seen) > 2


def test_the_condition_is_checked_once_even_without_time():
    assert wait_until(lambda: "ready", 0, "ready") == "ready"
