"""LYNX's capture on a real architecture: the probe's hooks inside vLLM's Qwen3 model, the
cue recorder at BPE cue tokens, and a probe made for another model refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoConfig, AutoTokenizer

from tests.real_models import cached_model
from thinkctl.errors import ProbeError
from thinkctl.probes.artifact import ProbeArtifact
from thinkctl.probes.features import model_facts

TESTBED_PROBE = Path(__file__).resolve().parents[2] / "testbed" / "model" / "probe"


def test_a_probe_made_for_another_model_is_refused():
    folder = cached_model("qwen3")
    facts = model_facts(AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder))
    with pytest.raises(ProbeError, match="another model.*hidden_size 128 != 64"):
        ProbeArtifact.load(TESTBED_PROBE).check_model(facts)


@pytest.mark.engine
def test_the_capture_records_at_cue_tokens_of_a_qwen3_model():
    from thinkctl.engine.offline import OfflineEngine
    from thinkctl.engine.recorder import PROMPT_POSITION, record_args

    folder = str(cached_model("qwen3"))
    # The start-up check runs in the constructor: every hook wrote after one request.
    engine = OfflineEngine(folder, record_layers=(1, 2), enforce_eager=True,
                           kv_cache_memory_bytes=256 << 20, max_model_len=256)  # fmt: skip
    tok = engine.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "Wait"}], tokenize=True,
                                     add_generation_prompt=True, return_dict=False)  # fmt: skip
    # Random weights repeat one token greedily; make that token the cue, as " Wait" is.
    (repeated,) = set(engine.greedy_ids([prompt], 4)[0])
    end = tok.convert_tokens_to_ids("</think>")
    out = engine.generate([prompt], 4, extra_args=[record_args("q", [repeated], end, True)])
    (prompt_record, *records) = engine.take_records()["q"]
    # The prompt's last token, read at the prefill step: the length predictor's input.
    assert prompt_record[0] == PROMPT_POSITION
    prompt_features = np.frombuffer(prompt_record[1], dtype=np.float32)
    assert prompt_features.shape == (2 * 64,) and np.abs(prompt_features).sum() > 0
    # Features are read at the step that processes a cue, so the last token has none.
    cue_positions = [i for i, t in enumerate(out[0].ids[:-1]) if t == repeated]
    assert cue_positions and sorted(pos for pos, _ in records) == cue_positions
    features = np.frombuffer(records[0][1], dtype=np.float32)
    assert features.shape == (2 * 64 + 1,) and np.isfinite(features).all()  # 2 blocks + conf.
    assert np.abs(features[:128]).sum() > 0
