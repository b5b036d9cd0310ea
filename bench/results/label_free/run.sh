#!/usr/bin/env bash
# Label-free against gold-label calibration on the testbed (#38), from the repository root:
# the same 2,000 calibration questions, once as prompts alone, once with their answers;
# then both probes served on the 1,000-problem test split. ~20 min on 2 cores.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}  # the interpreter thinkctl is installed in
thinkctl() { "$py" -m thinkctl "$@"; }
out=bench/results/label_free
tmp=$(mktemp -d)
"$py" - "$tmp/prompts.jsonl" <<'PY'
import json, sys
from thinkctl.testbed import tasks
with open(sys.argv[1], "w") as f:
    for p in tasks.calibration_pool(8000):
        f.write(json.dumps({"question": p.prompt()}) + "\n")
PY
thinkctl calibrate --model testbed --prompts "$tmp/prompts.jsonl" --limit 2000 --samples 1 \
    --calibration "$tmp/lf" --out "$tmp/lf/probe"
thinkctl calibrate --model testbed --data testbed:8000 --limit 2000 --samples 1 \
    --calibration "$tmp/gold" --out "$tmp/gold/probe"
for k in lf gold; do
    thinkctl bench accuracy --model testbed --probe "$tmp/$k/probe" --no-oracle --max-tokens 450 \
        --settings none lynx_risk:0.01 lynx_risk:0.02 --out "$tmp/bench_$k"
    mkdir -p "$out/$k"
    cp "$tmp/$k/probe/report.md" "$tmp/$k/probe/report.json" "$tmp/bench_$k/accuracy.json" \
        "$tmp/bench_$k/accuracy_run.json" "$out/$k/"
done
