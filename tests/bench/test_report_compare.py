"""`python -m thinkctl.bench.report --compare`: two models' accuracy-vs-tokens curves on one plot."""

import json

from hypothesis import given
from hypothesis import strategies as st

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


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), min_size=1, max_size=30))
def test_the_frontier_keeps_exactly_the_undominated_points(points):
    kept = set(report.frontier(points))

    def beats(a, b):  # a dominates b: no more tokens, no less accuracy, not the same
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    for i, p in enumerate(points):
        dominated = any(beats(q, p) for q in points)
        duplicate_first = points.index(p) == i
        assert (i in kept) == (not dominated and duplicate_first)


def test_the_answer_change_rate_pairs_each_question_with_none_on_the_same_seed():
    def row(setting, problem, answer):
        return {"setting": setting, "problem": problem, "sample": 0, "correct": True,
                "thinking_tokens": 10, "answer": answer}  # fmt: skip

    rows = [row("none", i, str(i % 3)) for i in range(4)]
    # lynx changes question 1's answer and loses question 3's; question 2 never ran.
    rows += [row("lynx_risk:0.01", 0, "0"), row("lynx_risk:0.01", 1, "2"),
             row("lynx_risk:0.01", 3, None)]  # fmt: skip
    rows += [{k: v for k, v in row("budget:5", 0, "0").items() if k != "answer"}]  # older rows
    summary = report.summarise(rows)
    by = {r["setting"]: r for r in summary["rows"]}
    assert by["none"]["answer_changed_vs_none"] == 0
    assert by["lynx_risk:0.01"]["answer_changed_vs_none"] == round(2 / 3, 4)
    assert "answer_changed_vs_none" not in by["budget:5"]
    assert "66.7%" in report.table(summary) and "| — |" in report.table(summary)
