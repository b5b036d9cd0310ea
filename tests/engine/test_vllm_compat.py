"""Every vLLM symbol thinkctl imports exists in the installed vLLM, and the signatures
thinkctl calls keep the parameters it passes: what to run first against a new vLLM
release (the GPU extra and the CPU one pin different versions)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vllm_compat", ROOT / "scripts" / "vllm_compat.py")
vllm_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vllm_compat)


IMPORTS = sorted(vllm_compat.vllm_imports())


def test_the_sources_import_from_vllm():
    assert len(IMPORTS) > 20  # the premise: the scan found thinkctl's imports


@pytest.mark.parametrize("module, name", IMPORTS, ids=[f"{m}:{n}" for m, n in IMPORTS])
def test_every_vllm_symbol_thinkctl_imports_exists(module, name):
    mod = importlib.import_module(module)
    if name:
        assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}"), name


def _params(obj) -> set[str]:
    return set(inspect.signature(obj).parameters)


# (object, the parameters thinkctl passes or overrides)
SIGNATURES = {
    "vllm:SamplingParams": {"extra_args", "output_kind", "logprobs", "structured_outputs",
                            "seed", "stop_token_ids", "logit_bias", "min_tokens"},
    "vllm.sampling_params:SamplingParams.verify": {"model_config", "speculative_config",
                                                   "structured_outputs_config", "tokenizer"},
    "vllm.v1.engine.async_llm:AsyncLLM.generate": {"prompt", "sampling_params", "request_id"},
    "vllm.v1.engine.async_llm:AsyncLLM.abort": {"request_id"},
    "vllm.v1.sample.logits_processor:LogitsProcessor.__init__": {"vllm_config", "device",
                                                                 "is_pin_memory"},
    "vllm.v1.sample.logits_processor:LogitsProcessor.apply": {"logits"},
    "vllm.v1.sample.logits_processor:LogitsProcessor.update_state": {"batch_update"},
    "vllm.v1.worker.gpu.sample.logits_processor.interface:LogitsProcessor.__init__": {
        "vllm_config", "req_states"},
    "vllm.v1.worker.gpu.sample.logits_processor.interface:LogitsProcessor.add_request": {
        "req_idx", "sampling_params"},
    "vllm.v1.worker.gpu.sample.logits_processor.interface:LogitsProcessor.apply": {
        "logits", "ctx"},
    "vllm.v1.worker.gpu.sample.logits_processor.interface:LogitsContext": {
        "idx_mapping_np", "input_ids", "seq_lens_upper_bound_np"},
    "vllm.v1.worker.gpu.sample.logits_processor.interface:LogitsProcRequestState": {
        "all_token_ids", "prompt_len", "prefill_len"},
    "vllm.config:ModelConfig.get_diff_sampling_param": {"self"},
}  # fmt: skip


@pytest.mark.parametrize("target", list(SIGNATURES))
def test_the_signatures_thinkctl_relies_on(target):
    module, qualname = target.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    missing = SIGNATURES[target] - _params(obj)
    assert not missing, f"{target} lost {missing}"
