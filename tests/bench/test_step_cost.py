"""`python -m thinkctl.bench.step_cost`, smoke-sized."""

import json

from thinkctl.bench import step_cost


def test_writes_every_arm_of_every_cell(tmp_path, capsys):
    step_cost.main(["--rows", "4", "8", "--vocab", "11", "--steps", "5", "--out", str(tmp_path)])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    run = json.loads((tmp_path / "step_cost.json").read_text())
    assert run["cells"] == printed and [c["rows"] for c in printed] == [4, 8]
    arms = ("none", "budget_ts", "lynx", "lynx_confidence", "confidence_feed", "vllm_builtin",
            "per_row_budget_ts")  # fmt: skip
    for cell in printed:
        assert cell["vocab"] == 11 and all(cell[f"{arm}_ms"] >= 0 for arm in arms)
        # Controlled rows cost more than rows that ask for nothing.
        assert cell["lynx_ms"] > cell["none_ms"] and cell["budget_ts_ms"] > cell["none_ms"]
    table = (tmp_path / "step_cost.md").read_text()
    assert "| model | rows | vocab | probe | none | budget_ts |" in table
    assert run["command"] in table


def test_a_model_cell_takes_its_shipped_probe_shape():
    # testbed-r1's probe reads 4 layers of 256 at Qwen's vocabulary.
    assert step_cost.shape("testbed-r1") == (151936, 4 * 256)
    assert step_cost.shape("testbed") == (43, 4 * 128)
