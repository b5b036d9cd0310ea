#!/usr/bin/env bash
# Label-free calibration where natural thinking is often wrong (#38), from the repository
# root: the testbed sampled at T = 1.6, where its natural accuracy falls to about 0.7.
# Calibrated from 2,000 prompts alone (and, to compare, with their answers), then served on
# the 1,000-problem test split at the same temperature. ~15 min on 2 cores.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}  # the interpreter thinkctl is installed in
thinkctl() { "$py" -m thinkctl "$@"; }
out=bench/results/label_free_hard
T=1.6
tmp=$(mktemp -d)
"$py" - "$tmp/prompts.jsonl" <<'PY'
import json, sys
from thinkctl.testbed import tasks
with open(sys.argv[1], "w") as f:
    for p in tasks.calibration_pool(8000):
        f.write(json.dumps({"question": p.prompt()}) + "\n")
PY
common=(--model testbed --limit 2000 --samples 1 --temperature "$T" --max-tokens 450
        --answer-tokens 8)
thinkctl calibrate "${common[@]}" --prompts "$tmp/prompts.jsonl" \
    --calibration "$tmp/lf" --out "$tmp/lf/probe"
thinkctl calibrate "${common[@]}" --data testbed:8000 \
    --calibration "$tmp/gold" --out "$tmp/gold/probe"
for k in lf gold; do
    thinkctl bench accuracy --model testbed --probe "$tmp/$k/probe" --no-oracle --max-tokens 450 \
        --temperature "$T" --settings none lynx_risk:0.01 lynx_risk:0.02 lynx_risk:0.05 \
        --out "$tmp/bench_$k"
    mkdir -p "$out/$k"
    cp "$tmp/$k/probe/report.md" "$tmp/$k/probe/report.json" "$tmp/bench_$k/accuracy.json" \
        "$tmp/bench_$k/accuracy_run.json" "$out/$k/"
    # The rows without the token ids (answers, exits and lengths are what the README reads).
    "$py" -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    r.pop("prompt_ids", None), r.pop("output_ids", None)
    print(json.dumps(r))' "$tmp/bench_$k/results.jsonl" > "$out/$k/results.jsonl"
done
