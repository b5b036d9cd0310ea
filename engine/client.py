"""The engine as the HTTP side sees it: vLLM's `AsyncLLM` behind a few methods that take
and give plain data (token ids, text, a finish reason, thinkctl's control events), so
routes and the generation never touch vLLM's types.

Errors: whatever vLLM raises for one request leaves here as an `EngineError` carrying
the HTTP status it deserves (vLLM's client errors 4xx, a dead engine 503, anything
else 500); server/errors.py renders it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vllm import SamplingParams
from vllm.exceptions import GenerationError, GracefulHTTPError, VLLMClientError, VLLMError
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from thinkctl.control.stack import ControlEvent
from thinkctl.engine.launch import check_capture, start_engine
from thinkctl.engine.trace_channel import EventCollector
from thinkctl.errors import EngineError


def _classified(exc: Exception) -> EngineError:
    if isinstance(exc, GracefulHTTPError):
        return EngineError(exc.message, int(exc.http_status))
    if isinstance(exc, VLLMClientError | ValueError):  # a bare ValueError: vLLM's older form
        return EngineError(str(exc), 400, None, getattr(exc, "parameter", None))
    if isinstance(exc, GenerationError):  # RetryableRequestError's status is 503
        return EngineError(str(exc), int(exc.status_code), "generation_error")
    if isinstance(exc, EngineDeadError):
        return EngineError("The engine is not running.", 503, "engine_dead")
    return EngineError("Generation failed inside the engine.", 500, "engine_error")


# One position's logprobs as vLLM returns them, in its order (the sampled token, then the
# top alternatives): (token id, logprob, decoded token or None).
Logprobs = list[tuple[int, float, str | None]]


@dataclass(frozen=True)
class Delta:
    """New output of one engine request: token ids, their text, the finish reason at the
    end, each token's logprobs when they were asked for, the prompt tokens vLLM's
    prefix cache served (None until the engine reports it), and vLLM's stop reason (the
    stop token id or string that ended it)."""

    token_ids: list[int]
    text: str
    finish_reason: str | None
    logprobs: list[Logprobs] | None = None
    cached_tokens: int | None = None
    stop_reason: int | str | None = None


def _logprobs(out: Any) -> list[Logprobs] | None:
    if out is None:
        return None
    return [[(tok, lp.logprob, lp.decoded_token) for tok, lp in step.items()] for step in out]


class Engine:
    def __init__(self, llm: AsyncLLM, collector: EventCollector) -> None:
        self._llm, self._collector = llm, collector

    @classmethod
    def start(
        cls,
        engine_args: Any,
        probe_dir: str | None,
        layers: Sequence[int],
        length_dir: str | None = None,
    ) -> Engine:
        """thinkctl's engine (engine/launch.py): its logits processors and worker extension."""
        return cls(*start_engine(engine_args, probe_dir, layers, length_dir))

    @property
    def tokenizer(self) -> Any:
        return self._llm.get_tokenizer()

    @property
    def max_model_len(self) -> int:
        return self._llm.model_config.max_model_len

    @property
    def max_logprobs(self) -> int:
        """vLLM's --max-logprobs (-1: the vocabulary)."""
        return self._llm.model_config.max_logprobs

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """The sampling defaults vLLM applies to requests that leave them unset: the model
        folder's generation_config.json under --generation-config and
        --override-generation-config, with vLLM's meaning (`max_new_tokens` is `max_tokens`)."""
        return self._llm.model_config.get_diff_sampling_param()

    async def check_capture(self) -> None:
        await check_capture(self._llm)

    @staticmethod
    def params(sampling: Mapping[str, Any], extra_args: dict | None) -> SamplingParams:
        """vLLM's sampling parameters, streamed as deltas; bad values are an EngineError.
        `sampling["structured_outputs"]` is a dict of vLLM's `StructuredOutputsParams`."""
        sampling = dict(sampling)
        grammar = sampling.pop("structured_outputs", None)
        try:
            if grammar is not None:
                sampling["structured_outputs"] = StructuredOutputsParams(**grammar)
        except (TypeError, ValueError, VLLMClientError) as exc:  # unknown keys, none or two
            raise EngineError(str(exc), 400, None, "structured_outputs") from exc
        try:
            return SamplingParams(
                **sampling, extra_args=extra_args, output_kind=RequestOutputKind.DELTA
            )
        except (ValueError, VLLMClientError) as exc:  # e.g. an empty stop string
            raise _classified(exc) from exc

    def verify(self, params: SamplingParams) -> None:
        """vLLM's own checks of the parameters against this model (token ids in range, the
        grammar compiles), run before any response is sent; failures are an EngineError."""
        cfg = self._llm.vllm_config
        try:
            params.verify(cfg.model_config, cfg.speculative_config,
                          cfg.structured_outputs_config, self.tokenizer)  # fmt: skip
        except (VLLMError, ValueError) as exc:
            raise _classified(exc) from exc

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams, request_id: str
    ) -> AsyncIterator[Delta]:
        prompt = {"prompt_token_ids": prompt_ids}
        try:
            async for out in self._llm.generate(prompt, params, request_id):
                for comp in out.outputs:
                    yield Delta(list(comp.token_ids), comp.text, comp.finish_reason,
                                _logprobs(comp.logprobs), out.num_cached_tokens,
                                comp.stop_reason)  # fmt: skip
        except (VLLMError, ValueError) as exc:
            raise _classified(exc) from exc

    async def abort(self, request_ids: list[str]) -> None:
        await self._llm.abort(request_ids)

    def events(self, request_id: str) -> list[ControlEvent]:
        """The request's control events from the worker (engine/trace_channel.py); call once."""
        return self._collector.take(request_id)

    @property
    def dead(self) -> bool:
        """The engine's processes have died (vLLM will not recover them)."""
        return self._llm.errored

    async def check_health(self) -> None:
        """Raises when the engine is dead."""
        await self._llm.check_health()

    def shutdown(self) -> None:
        self._llm.shutdown()
        self._collector.close()
