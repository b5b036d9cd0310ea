"""Where does a slip show? Offline, on the testbed's first passes (transformers, CPU).

    python -m thinkctl.testbed.slip_signal --out testbed/model/slip_signal.json    # ~1.5 min here

Samples first passes (up to the first cue) of the calibration problems at T = 0.6 and
labels each by whether its tentative answer is right, the label a forced exit at the
first cue gives. Logistic regressions on three inputs, fitted on 60% of the questions and
scored on the rest, over three splits:
- the lowest log-probability among the sampled tokens (what the shipped probe adds);
- the residual stream at the cue (all blocks) plus that value (the shipped probe's input);
- the residual stream at the least likely sampled token itself plus that value.
Reported: held-out AUC and the share of right passes that score above the 99th
percentile of wrong ones (what an exit at a 1% per-event risk could still take).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from thinkctl.testbed import tasks
from thinkctl.testbed.traces import CUES

INPUTS = ("lowest_logprob", "cue_state+lowest_logprob", "weakest_token_state+lowest_logprob")


def sample_first_passes(model_dir: Path, samples: int, seed: int) -> dict[str, np.ndarray]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    cue_ids = set(tok.convert_tokens_to_ids(list(CUES)))
    problems = tasks.held_out("calibration")
    rows: dict[str, list] = {k: [] for k in ("question", "right", "lowest", "cue", "weakest")}
    for _ in range(samples):
        for b0 in range(0, len(problems), 250):
            batch = problems[b0 : b0 + 250]
            prompts = tasks.prompt_ids(tok, batch)
            width = max(map(len, prompts))
            ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
            mask = (ids != tok.pad_token_id).long()
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                     temperature=0.6, max_new_tokens=75,
                                     pad_token_id=tok.pad_token_id)  # fmt: skip
                mask = torch.cat([mask, torch.ones_like(out[:, width:])], 1)
                fw = model(input_ids=out, attention_mask=mask, output_hidden_states=True)
            logp = torch.log_softmax(fw.logits.float(), -1)  # before temperature
            states = torch.cat(fw.hidden_states[1:], -1)  # every block's output
            for i, problem in enumerate(batch):
                gen = out[i, width:].tolist()
                cue = next((j for j, t in enumerate(gen) if t in cue_ids), None)
                words = tok.convert_ids_to_tokens(gen[: cue or 0])
                if cue is None or "answer" not in words[:-1]:
                    continue
                said = words[words.index("answer") + 1]
                lp = np.array([float(logp[i, width + k - 1, gen[k]]) for k in range(cue)])
                weakest = int(lp.argmin())
                rows["question"].append(b0 + i)
                rows["right"].append(int(said == str(problem.answer)))
                rows["lowest"].append(float(lp.min()))
                rows["cue"].append(states[i, width + cue].numpy())
                rows["weakest"].append(states[i, width + weakest].numpy())
    return {k: np.array(v) for k, v in rows.items()}


def compare(rows: dict[str, np.ndarray], splits: int = 3) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    low = rows["lowest"][:, None]
    inputs = dict(zip(INPUTS, (low, np.hstack([rows["cue"], low]),
                               np.hstack([rows["weakest"], low])), strict=True))  # fmt: skip
    y, questions = rows["right"], rows["question"]
    out: dict[str, dict[str, float]] = {}
    for name, x in inputs.items():
        aucs, takes = [], []
        for seed in range(splits):
            order = np.random.default_rng(seed).permutation(np.unique(questions))
            train = np.isin(questions, order[: int(0.6 * len(order))])
            logreg = LogisticRegression(C=0.01, max_iter=5000, class_weight="balanced")
            clf = make_pipeline(StandardScaler(), logreg).fit(x[train], y[train])
            s = clf.predict_proba(x[~train])[:, 1]
            yt = y[~train]
            aucs.append(roc_auc_score(yt, s))
            takes.append(float((s[yt == 1] > np.quantile(s[yt == 0], 0.99)).mean()))
        out[name] = {"auc": round(float(np.mean(aucs)), 4),
                     "right_above_wrong_p99": round(float(np.mean(takes)), 3)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path(__file__).parent / "model")
    p.add_argument("--samples", type=int, default=4, help="first passes per problem")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    rows = sample_first_passes(args.model, args.samples, args.seed)
    result = {"passes": int(len(rows["right"])), "wrong": int((rows["right"] == 0).sum()),
              "inputs": compare(rows)}  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
