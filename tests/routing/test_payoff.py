import pytest

from dydet.routing.payoff import MIN_HARD_GAIN, payoff_warning


def test_no_warning_when_the_hard_route_gains_and_the_router_beats_random():
    assert payoff_warning(0.50, 0.55, router=0.54, random=0.52) is None
    assert payoff_warning(0.50, 0.50 + MIN_HARD_GAIN) is None  # without a trade-off table: only the routes


@pytest.mark.parametrize("hard", [0.49, 0.50, 0.50 + MIN_HARD_GAIN / 2])
def test_a_hard_route_that_does_not_gain_is_named_with_the_fix(hard):
    line = payoff_warning(0.50, hard, where="after stage 1")
    assert line.startswith("routing does not pay after stage 1") and "train longer" in line and "\n" not in line


@pytest.mark.parametrize("router", [0.52, 0.515])
def test_a_router_no_better_than_random_is_named_with_the_fix(router):
    line = payoff_warning(0.50, 0.55, router=router, random=0.52)
    assert line.startswith("the router does not beat random routing") and "stage2_epochs=" in line
