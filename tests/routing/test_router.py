"""Router rules and explanations, on hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depo.errors import DepoError
from depo.routing.router import ModelSpec, Router, gain_choice, threshold_choice


class Table:
    """Predict from a dict text -> rate (or rows for a multi-head predictor); counts calls."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def predict(self, texts):
        self.calls += 1
        return np.array([self.table[t] for t in texts], dtype=np.float64)


TWO = [ModelSpec("large", 7.0), ModelSpec("small", 1.5)]  # given out of cost order on purpose


def test_threshold_rule_is_small_iff_p_small_at_least_tau():
    rates = np.array([[0.80, np.nan], [0.75, np.nan], [0.7499, np.nan], [0.1, np.nan]])
    assert threshold_choice(np.nan_to_num(rates), 0.75).tolist() == [0, 0, 1, 1]
    router = Router(TWO, {"small": Table({"a": 0.8, "b": 0.75, "c": 0.74})}, rule="threshold", tau=0.75)
    assert router.names == ["small", "large"]  # sorted by cost
    assert [d.model for d in router.route(["a", "b", "c"])] == ["small", "small", "large"]


def test_threshold_cascade_over_three_models_takes_the_cheapest_confident_one():
    rates = np.array([[0.9, 0.9, 0.9], [0.5, 0.8, 0.1], [0.5, 0.6, 0.99]])
    assert threshold_choice(rates, 0.7).tolist() == [0, 1, 2]


def test_gain_rule_hand_worked():
    # costs 1 and 5, lambda 0.05: large iff p_large - p_small > 0.05 * 4 = 0.2
    rates = np.array([[0.5, 0.75], [0.5, 0.7], [0.5, 0.69], [0.9, 0.2]])
    assert gain_choice(rates, [1.0, 5.0], 0.05).tolist() == [1, 0, 0, 0]  # exact tie (0.2) goes to the cheaper
    # three models: scores p - 0.1*c = [0.4-0.1, 0.7-0.3, 0.95-0.6] = [0.3, 0.4, 0.35] -> middle one
    assert gain_choice(np.array([[0.4, 0.7, 0.95]]), [1.0, 3.0, 6.0], 0.1).tolist() == [1]
    assert gain_choice(np.array([[0.4, 0.7, 0.95]]), [1.0, 3.0, 6.0], 0.0).tolist() == [2]
    assert gain_choice(np.array([[0.4, 0.7, 0.95]]), [1.0, 3.0, 6.0], 10.0).tolist() == [0]


@settings(max_examples=200, deadline=None)
@given(
    ps=st.floats(0, 1),
    pl=st.floats(0, 1),
    lam=st.floats(0, 2),
    c_small=st.floats(0, 10),
    extra=st.floats(0.01, 10),
)
def test_gain_rule_with_two_models_is_the_predicted_gain_against_the_cost_gap(ps, pl, lam, c_small, extra):
    c_large = c_small + extra
    chosen = gain_choice(np.array([[ps, pl]]), [c_small, c_large], lam)[0]
    score_small, score_large = ps - lam * c_small, pl - lam * c_large
    assert chosen == (1 if score_large > score_small else 0)


def test_route_explains_each_decision_and_is_deterministic_and_batched():
    small = Table({"easy": 0.9, "hard": 0.2, "hopeless": 0.01})
    large = Table({"easy": 0.95, "hard": 0.8, "hopeless": 0.02})
    router = Router(TWO, {"small": small, "large": large}, rule="gain", lam=0.02)
    texts = ["easy", "hard", "hopeless"]
    first = router.route(texts)
    assert small.calls == 1 and large.calls == 1  # one predict call per model for the whole batch
    assert [d.model for d in first] == ["small", "large", "small"]
    assert first[1].rates == {"small": 0.2, "large": 0.8}
    assert first[1].scores == pytest.approx({"small": 0.2 - 0.02 * 1.5, "large": 0.8 - 0.02 * 7.0})
    assert first[1].explain() == "gain: p(small)=0.200, p(large)=0.800 -> large"
    assert router.route(texts) == first


def test_multi_head_predictor_columns_follow_the_given_model_order():
    # columns in the order models were given: large first, then small
    multi = Table({"q": [0.9, 0.3], "r": [0.4, 0.35]})
    router = Router(TWO, multi, rule="gain", lam=0.0)
    rates = router.predict_rates(["q", "r"])
    assert rates.tolist() == [[0.3, 0.9], [0.35, 0.4]]  # router order: small, large
    assert [d.model for d in router.route(["q", "r"])] == ["large", "large"]
    assert router.route([]) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"models": [ModelSpec("a", 1)], "predictors": {}}, "at least two"),
        ({"models": [ModelSpec("a", 1), ModelSpec("a", 2)], "predictors": {}}, "duplicate"),
        ({"models": TWO, "predictors": {"small": Table({})}, "rule": "gain"}, "needs a pass-rate predictor"),
        ({"models": TWO, "predictors": {}, "rule": "threshold"}, "needs a pass-rate predictor for ['small']"),
        ({"models": TWO, "predictors": {"small": Table({}), "medium": Table({})}}, "unknown models"),
        ({"models": TWO, "predictors": {"small": Table({})}, "rule": "best"}, "unknown routing rule"),
        ({"models": TWO, "predictors": {"small": Table({})}, "tau": 1.5}, "tau"),
        ({"models": TWO, "predictors": {"small": Table({})}, "lam": -1.0}, "lambda"),
    ],
)
def test_bad_router_setups_are_clear_errors(kwargs, message):
    with pytest.raises(DepoError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Router(**kwargs)


def test_predictions_are_checked():
    with pytest.raises(DepoError, match=r"outside \[0, 1\]"):
        Router(TWO, {"small": Table({"x": 1.2})}).route(["x"])
    with pytest.raises(DepoError, match="shape"):
        Router(TWO, Table({"x": [0.1, 0.2, 0.3]})).route(["x"])
    with pytest.raises(DepoError, match="cost"):
        ModelSpec("m", -1.0)


def test_fallback_order_prefers_the_nearest_then_the_more_capable_model():
    models = [ModelSpec("s", 1), ModelSpec("m", 3), ModelSpec("l", 7)]
    router = Router(models, {"s": Table({}), "m": Table({})})
    assert router.fallback_order("s") == ["s", "m", "l"]
    assert router.fallback_order("m") == ["m", "l", "s"]
    assert router.fallback_order("l") == ["l", "m", "s"]
