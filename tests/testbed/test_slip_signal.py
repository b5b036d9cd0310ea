"""The slip-signal comparison on synthetic passes: an input that holds the answer wins."""

import numpy as np

from thinkctl.testbed import slip_signal


def test_the_input_that_carries_the_label_scores_best():
    rng = np.random.default_rng(0)
    n = 600
    right = (rng.random(n) < 0.8).astype(int)
    rows = {
        "question": np.arange(n) // 2,
        "right": right,
        "lowest": rng.normal(size=n),  # noise
        "cue": rng.normal(size=(n, 4)),  # noise
        "weakest": np.column_stack([right + 0.1 * rng.normal(size=n), rng.normal(size=n)]),
    }
    out = slip_signal.compare(rows, splits=2)
    assert set(out) == set(slip_signal.INPUTS)
    best = out["weakest_token_state+lowest_logprob"]
    assert best["auc"] > 0.99 and best["right_above_wrong_p99"] > 0.9
    assert out["lowest_logprob"]["auc"] < 0.65
