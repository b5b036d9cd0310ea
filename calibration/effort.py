"""Effort calibration: sample natural thinking lengths, fit and write the effort table.

    python -m thinkctl.calibration.effort --model testbed/model  # writes testbed/model/effort.json

The table's definition is in probes/effort_table.py, which the server reads too.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

from thinkctl.probes import model_folder
from thinkctl.probes.effort_table import EFFORT_FILE, fit
from thinkctl.probes.features import tokenizer_sha256


def natural_lengths(
    model: str | Path, prompts: list[str], temperature: float, seed: int
) -> list[int]:
    """Thinking tokens of each prompt's natural run, through vLLM."""
    from thinkctl.engine.offline import OfflineEngine

    engine = OfflineEngine(str(model), seed)
    tok = engine.tokenizer
    end_id = model_folder.read(model, tok).require_end()
    ids = [
        tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                tokenize=True, return_dict=False)
        for p in prompts
    ]  # fmt: skip
    room = engine.max_model_len - max(map(len, ids))
    lengths = []
    for c in engine.generate(ids, room, temperature, progress=True):
        toks = c.ids
        lengths.append(toks.index(end_id) if end_id in toks else len(toks))
    return lengths


def _prompts(data: str) -> list[str]:
    if data == "testbed":
        from thinkctl.testbed import tasks

        return [p.prompt() for p in tasks.held_out("calibration")]
    return [json.loads(line)["question"] for line in Path(data).read_text().splitlines() if line]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder or hub id")
    p.add_argument(
        "--data",
        default="testbed",
        help="'testbed' (its calibration split) or a JSONL file of {'question': ...}",
    )
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help=f"default: the model's calibration folder's "
                   f"{EFFORT_FILE} (the model folder itself, else the cache by hub id), "
                   "where `thinkctl serve` finds it")  # fmt: skip
    args = p.parse_args(argv)
    lengths = natural_lengths(args.model, _prompts(args.data), args.temperature, args.seed)
    table = fit(lengths)
    table["calibration"] = {
        "data": args.data,
        "n": len(lengths),
        "temperature": args.temperature,
        "seed": args.seed,
        "median_thinking_tokens": statistics.median(lengths),
        "command": "python -m thinkctl.calibration.effort "
        + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    from transformers import AutoTokenizer

    # Which tokenizer the lengths were counted in: `serve` refuses the table for another.
    table["model"] = {
        "tokenizer_sha256": tokenizer_sha256(AutoTokenizer.from_pretrained(args.model))
    }
    out = args.out or model_folder.calibration_dir(args.model) / EFFORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
