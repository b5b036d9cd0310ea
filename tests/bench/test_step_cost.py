"""`python -m bench.step_cost`, smoke-sized."""

import json

from bench import step_cost


def test_prints_a_positive_cost_per_step_for_each_part(capsys):
    step_cost.main(["--rows", "4", "--vocab", "11", "--steps", "5"])
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 4 and out["vocab"] == 11
    for key in ("processor_none_ms", "processor_lynx_ms", "processor_budget_ts_ms",
                "confidence_feed_ms"):  # fmt: skip
        assert out[key] > 0
    # Controlled rows cost more than the processor's fixed cost with no controlled row.
    assert out["processor_lynx_ms"] > out["processor_none_ms"]
    assert out["processor_budget_ts_ms"] > out["processor_none_ms"]
