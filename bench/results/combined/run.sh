#!/usr/bin/env bash
# Effort as one policy on the testbed (#38), from the repository root: recalibrate the shipped
# bundle (probe, effort table, length predictor) in one run, install it into testbed/model,
# then serve it and measure the combined effort against LYNX's and the per-query budget's
# alone on the 1,000-problem test split. ~7 min of calibration and ~6 min of bench on 2 cores.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}  # the interpreter thinkctl is installed in
thinkctl() { "$py" -m thinkctl "$@"; }
out=bench/results/combined
tmp=$(mktemp -d)
thinkctl calibrate --model testbed --data testbed:8000 --samples 1 --max-tokens 450 \
    --answer-tokens 8 --exit-every 8 --out "$tmp/cal/probe" --calibration "$tmp/cal"
cp "$tmp/cal/effort.json" testbed/model/effort.json
rm -rf testbed/model/length && cp -r "$tmp/cal/length" testbed/model/length
find "$tmp/cal/probe" -maxdepth 1 -type f -exec cp {} testbed/model/probe/ \;
# serve finds the bundle in the model folder; the bench refuses effort_combined otherwise.
thinkctl bench accuracy --model testbed --no-oracle --max-tokens 450 \
    --settings none effort_combined:low effort_combined:medium lynx_effort:low \
    lynx_effort:medium effort_query:low effort_query:medium lynx_risk:0.01 --out "$tmp/bench"
cp "$tmp/bench/accuracy.json" "$tmp/bench/accuracy_run.json" "$tmp/bench/pareto.png" "$out/"
