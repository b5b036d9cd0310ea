"""`python -m thinkctl.bench.report --compare`: two models' accuracy-vs-tokens curves on one plot."""

import json

from thinkctl.bench import report


def _rows(tokens: float, accuracy: float) -> list[dict]:
    rows = [{"setting": "none", "problem": i, "correct": i < accuracy * 10,
             "thinking_tokens": tokens} for i in range(10)]  # fmt: skip
    rows += [{"setting": "budget:20", "problem": i, "correct": i < 5, "thinking_tokens": 20}
             for i in range(10)]  # fmt: skip
    return report.summarise(rows)["rows"]


def test_compare_draws_both_models_and_prints_their_tables(tmp_path, capsys):
    for name, tokens in (("base", 137.0), ("concise", 44.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "accuracy.json").write_text(json.dumps(_rows(tokens, 1.0)))
    out = tmp_path / "comparison.png"
    report.main(["--compare", f"base={tmp_path / 'base'}", f"concise={tmp_path / 'concise'}",
                 "--families", "none", "--out", str(out)])  # fmt: skip
    assert out.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "## base" in printed and "## concise" in printed
    assert "| none | 10 | 1.000" in printed and "137.0" in printed and "44.0" in printed
