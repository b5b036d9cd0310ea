"""How well the testbed's length predictors rank the bench's test split (#22's report).

    python bench/results/notes/length_spearman.py   # from the repository root, ~2 min

Reads the `none` rows of bench/results/results.jsonl (1,000 natural traces of the test
split, with their token ids), records each prompt's last-token features through the same
engine hooks the server uses (engine/recorder.py), predicts with testbed/model/length, and
reports Spearman's rho of each prediction with its target on these traces: the natural
thinking length, and the sufficient length as the bench's oracle measures it (the earliest
cue whose forced exit answers right; the predictor was trained on the earliest right exit
at a cue or on an 8-token grid, a slightly different target). Writes length_spearman.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from thinkctl.bench.accuracy import oracle_rows
from thinkctl.calibration import datasets
from thinkctl.probes.length_predictor import LengthPredictor

MODEL = Path("testbed/model")
RESULTS = Path("bench/results/results.jsonl")


def main() -> None:
    from thinkctl.engine.offline import OfflineEngine
    from thinkctl.engine.recorder import PROMPT_POSITION, record_args

    rows = [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()]
    natural = [r for r in rows if r["setting"] == "none"]
    data = datasets.load("testbed", split="test")
    sufficient = [r["thinking_tokens"] for r in oracle_rows(MODEL, RESULTS, data)]
    predictor = LengthPredictor.load(MODEL / "length")
    engine = OfflineEngine(str(MODEL), 0, record_layers=predictor.layers)
    keys = [str(i) for i in range(len(natural))]
    engine.generate([r["prompt_ids"] for r in natural], 1,
                    extra_args=[record_args(k, [], -1, False) for k in keys])  # fmt: skip
    records = engine.take_records()
    feats = np.stack([np.frombuffer(dict(records[k])[PROMPT_POSITION], np.float32)
                      for k in keys])  # fmt: skip
    pred = predictor.predict(feats[:, predictor.columns(predictor.layers)])
    out = {
        "traces": len(natural),
        "spearman_natural": round(float(spearmanr(pred[:, 0],
                                                  [r["thinking_tokens"] for r in natural])[0]), 4),
        "spearman_sufficient": round(float(spearmanr(pred[:, 1], sufficient)[0]), 4),
        "command": "python bench/results/notes/length_spearman.py",
    }  # fmt: skip
    Path(__file__).with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
