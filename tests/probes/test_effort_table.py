import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thinkctl.probes import effort_table
from thinkctl.server.config import ServerConfig
from thinkctl.server.effort import EffortMap
from thinkctl.server.plan import level_budgets

lengths = st.lists(st.integers(1, 500), min_size=1, max_size=60)


@given(lengths, st.floats(0.0, 1.0))
def test_budget_is_the_smallest_cap_reaching_the_effort(ls, e):
    b = effort_table.budget_for(ls, e)
    target = e * np.mean(ls)
    assert np.minimum(ls, b).mean() >= target - 1e-9
    if b > 0:
        assert np.minimum(ls, b - 1).mean() < target - 1e-9


@given(lengths)
def test_fitted_budgets_never_decrease_and_full_effort_is_uncut(ls):
    table = effort_table.fit(ls)
    budgets = [b for _, b in table["points"]]
    assert budgets == sorted(budgets) and budgets[0] == 0
    assert np.minimum(ls, budgets[-1]).mean() == pytest.approx(np.mean(ls))


def test_server_reads_the_table_and_interpolates(tmp_path):
    table = effort_table.fit(list(range(40, 240)))
    (tmp_path / effort_table.EFFORT_FILE).write_text(json.dumps(table))
    m = EffortMap.load(tmp_path)
    assert m.calibrated and m.natural_mean == 139.5
    assert m.budget(0.5) == dict(map(tuple, table["points"]))[0.5]
    assert m.budget(0.525) >= m.budget(0.5)
    budgets = level_budgets(ServerConfig(model_name="m", effort=m))
    levels = [budgets[k] for k in ("none", "minimal", "low", "medium", "high", "xhigh")]
    assert levels == sorted(set(levels)) and budgets["max"] is None  # strictly increasing


def test_uncalibrated_models_refuse_a_numeric_effort(tmp_path):
    m = EffortMap.load(tmp_path)
    assert not m.calibrated
    assert level_budgets(ServerConfig(model_name="m", effort=m))["none"] == 0
    with pytest.raises(ValueError):
        m.budget(0.5)


@pytest.mark.parametrize(
    "points", [[[0.0, 5], [1.0, 3]], [[0.5, 1], [0.2, 2]], [], [[0, -1], [1, 2]]]
)
def test_bad_tables_are_refused(tmp_path, points):
    (tmp_path / effort_table.EFFORT_FILE).write_text(json.dumps({"points": points, "levels": {}}))
    with pytest.raises(ValueError):
        effort_table.read(tmp_path)


@given(st.lists(st.integers(-1, 400), max_size=80))
def test_the_answer_reserve_covers_its_percentile_of_the_known_answers(ls):
    reserve = effort_table.answer_reserve(ls)
    known = [x for x in ls if x >= 0]  # -1: the trace's answer was cut or never started
    if not known:
        assert reserve is None
        return
    assert reserve["n"] == len(known) and reserve["percentile"] == effort_table.ANSWER_PERCENTILE
    covered = np.mean(np.asarray(known) <= reserve["tokens"])
    assert covered >= effort_table.ANSWER_PERCENTILE / 100
    assert reserve["tokens"] <= max(known)


def test_the_server_reads_the_calibrated_answer_reserve(tmp_path):
    table = effort_table.fit([10, 20, 30]) | {"answer_reserve": effort_table.answer_reserve([5, 9])}
    (tmp_path / effort_table.EFFORT_FILE).write_text(json.dumps(table))
    assert EffortMap.load(tmp_path).answer_reserve == 9
