"""`python -m bench.step_cost`, smoke-sized."""

import json

from bench import step_cost


def test_prints_a_positive_cost_per_step_for_each_part(capsys):
    step_cost.main(["--rows", "4", "--vocab", "11", "--steps", "5"])
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 4 and out["vocab"] == 11
    for key in ("confidence_feed_ms", "stack_lynx_ms", "stack_budget_ts_ms"):
        assert out[key] > 0
