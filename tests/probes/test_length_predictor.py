"""The length predictor's artifact and the per-query budget family (probes/)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.probes.effort_table import QueryBudget, query_points
from thinkctl.probes.length_predictor import LengthPredictor

HIDDEN = 3


def predictor(layers=(2, 4)) -> LengthPredictor:
    rng = np.random.default_rng(0)
    d = HIDDEN * len(layers)
    return LengthPredictor(tuple(layers), HIDDEN, rng.normal(size=d), rng.uniform(1, 2, d),
                           rng.normal(size=(2, d)), np.array([4.0, 3.0]),
                           {"tokenizer_sha256": "f" * 64})  # fmt: skip


def test_save_and_load_give_the_same_predictions(tmp_path):
    p = predictor()
    p = dataclasses.replace(p, coef=np.asfortranarray(p.coef))  # as sklearn may hand it over
    p.save(tmp_path / "length")
    q = LengthPredictor.load(tmp_path / "length")
    x = np.random.default_rng(1).normal(size=(5, 6))
    np.testing.assert_allclose(q.predict(x), p.predict(x))
    assert q.layers == (2, 4) and q.meta["tokenizer_sha256"] == "f" * 64
    assert LengthPredictor.load(tmp_path / "nothing") is None


def test_weights_that_do_not_match_the_description_are_refused(tmp_path):
    import json

    p = predictor()
    p.save(tmp_path)
    meta = json.loads((tmp_path / "predictor.json").read_text())
    meta["hidden_size"] = 4
    (tmp_path / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match"):
        LengthPredictor.load(tmp_path)


def test_columns_pick_its_blocks_out_of_a_wider_capture():
    p = predictor((2, 4))
    captured = (1, 2, 3, 4)
    x = np.arange(4 * HIDDEN, dtype=float).reshape(1, -1)  # block k holds 3(k-1)..3k-1
    cols = p.columns(captured)
    np.testing.assert_array_equal(x[0, cols], [3, 4, 5, 9, 10, 11])
    with pytest.raises(ValueError, match=r"reads blocks \[4\]"):
        p.columns((1, 2))


@settings(max_examples=200, deadline=None)
@given(edges=st.lists(st.floats(1, 500), max_size=6, unique=True),
       budgets=st.lists(st.integers(0, 300), min_size=7, max_size=7),
       natural=st.floats(0, 800))  # fmt: skip
def test_a_query_gets_the_budget_of_its_predicted_lengths_bin(edges, budgets, natural):
    edges = sorted(edges)
    q = QueryBudget(0.5, tuple(edges), tuple(budgets[: len(edges) + 1]))
    k = sum(natural >= e for e in edges)  # bins are [e_k, e_k+1)
    assert q.budget(np.log1p(natural)) == budgets[k]


@pytest.mark.parametrize("edges, budgets", [((10.0,), (5,)), ((20.0, 10.0), (1, 2, 3)),
                                            ((10.0,), (5, -1))])  # fmt: skip
def test_malformed_points_are_refused(edges, budgets):
    with pytest.raises(ValueError):
        QueryBudget(0.5, edges, budgets)


def test_without_edges_the_budget_is_the_global_cap():
    q = QueryBudget(0.5, (), (72,))
    np.testing.assert_array_equal(q.budgets_for(np.array([0.0, 9.0])), [72, 72])


def test_query_points_read_back_sorted_by_effort():
    pts = [QueryBudget(0.7, (50.0, 90.0), (40, 0, 90)), QueryBudget(0.3, (), (42,))]
    table = {"per_query": {"points": [p.as_json() for p in pts]}}
    assert query_points(table) == (pts[1], pts[0])
    assert query_points({}) == ()
