"""vLLM's offline `LLM`, as calibration, the testbed's evaluation and the benchmarks use it:
token ids in, token ids out, with the cue recorder and the probe's capture when asked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from thinkctl.engine import runner
from thinkctl.engine.launch import WORKER_EXTENSION
from thinkctl.errors import CommandError
from thinkctl.probes import capture


@dataclass(frozen=True)
class Completion:
    ids: list[int]
    text: str
    finished: bool = True  # ended on a stop (EOS, a stop token), not on max_tokens


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` while the engine starts (its processes inherit them), then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class OfflineEngine:
    """One offline engine. `record_layers` installs the probe's capture on those blocks and
    the cue recorder (engine/recorder.py) beside it; the engine runs vLLM's default mode
    (compiled unless `enforce_eager=True` is passed), as the server does."""

    def __init__(
        self,
        model: str,
        seed: int = 0,
        kv_cache_memory_bytes: int = 1 << 30,
        record_layers: Sequence[int] = (),
        **engine_kwargs: Any,
    ) -> None:
        from vllm import LLM

        from thinkctl.engine import recorder

        chosen = runner.choose()  # the server's choice, so calibration runs where serving does
        if record_layers and chosen != "v1":
            raise CommandError("recording hidden states (calibrate) needs the V1 model runner "
                               f"(it is {chosen!r}: unset {runner.RUNNER_ENV})")  # fmt: skip
        env = {**runner.environment(chosen),
               **(capture.environment(record_layers) if record_layers else {})}  # fmt: skip
        if record_layers:
            engine_kwargs.update(
                logits_processors=[recorder.PROCESSOR], worker_extension_cls=WORKER_EXTENSION
            )
        with _environment(env):
            self.llm = LLM(
                model=model,
                seed=seed,
                kv_cache_memory_bytes=kv_cache_memory_bytes,
                enable_prefix_caching=True,  # forced exits share their trace's prefix
                **engine_kwargs,
            )
        self.tokenizer = self.llm.get_tokenizer()
        if record_layers:
            self.check_capture()

    @property
    def max_model_len(self) -> int:
        return self.llm.llm_engine.model_config.max_model_len

    @property
    def hidden_size(self) -> int:
        cfg = self.llm.llm_engine.model_config.hf_config
        return getattr(cfg, "get_text_config", lambda: cfg)().hidden_size

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        extra_args: Sequence[dict | None] | None = None,
        progress: bool = False,
    ) -> list[Completion]:
        """One completion per prompt (token ids), greedy unless a temperature is given;
        `extra_args[i]` reaches the logits processors of prompt i."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        extras = extra_args if extra_args is not None else [None] * len(prompts)
        params = [
            SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                           extra_args=extra)
            for extra in extras
        ]  # fmt: skip
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=progress
        )
        return [
            Completion(
                list(o.outputs[0].token_ids),
                o.outputs[0].text,
                o.outputs[0].finish_reason == "stop",
            )
            for o in outs
        ]

    def greedy_ids(self, prompts: Sequence[Sequence[int]], max_tokens: int = 8) -> list[list[int]]:
        """Greedy answers (token ids) in one batch, e.g. of forced exits (probes/forced_exit.py)."""
        return [c.ids for c in self.generate(prompts, max_tokens)]

    def check_capture(self) -> None:
        """The server's start-up check (engine/launch.py): after one tiny request, every
        worker's hooks must have written."""
        installed = self.llm.collective_rpc("thinkctl_capture_reset")
        self.generate([capture.CHECK_PROMPT_IDS], capture.CHECK_MAX_TOKENS)
        capture.require_written(installed, self.llm.collective_rpc("thinkctl_capture_written"))

    def take_records(self) -> dict[str, list[tuple[int, bytes]]]:
        """The cue recorder's records of every worker since the last call."""
        records: dict[str, list[tuple[int, bytes]]] = {}
        for worker_records in self.llm.collective_rpc("thinkctl_take_records"):
            records.update(worker_records)
        return records
