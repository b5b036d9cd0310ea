"""vLLM's engine arguments, parsed by vLLM and passed through to it untouched."""

from __future__ import annotations

import argparse
from typing import Any

from thinkctl.probes import model_folder

# The KV cache reserved on CPU when neither --gpu-memory-utilization nor
# --kv-cache-memory-bytes is given: vLLM's 0.92 default means 92% of host memory there,
# which fails on any machine where other processes hold memory.
CPU_KV_CACHE_BYTES = 2 << 30


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """vLLM's argument parser (it rewrites `serve --model X` into the positional form)."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return FlexibleArgumentParser(prog=prog, description=description)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    AsyncEngineArgs.add_cli_args(parser)


def engine_args(args: argparse.Namespace) -> Any:
    """`AsyncEngineArgs` from the parsed flags (`gpu_memory_utilization` None: not given)."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.platforms import current_platform

    if args.gpu_memory_utilization is None:
        if current_platform.is_cpu() and args.kv_cache_memory_bytes is None:
            args.kv_cache_memory_bytes = CPU_KV_CACHE_BYTES
        args.gpu_memory_utilization = 0.92  # vLLM's own default
    return AsyncEngineArgs.from_cli_args(args)


def http_keep_alive_s() -> int:
    """vLLM's own knob for idle keep-alive connections (default 5 s), so both servers agree."""
    from vllm import envs

    return envs.VLLM_HTTP_TIMEOUT_KEEP_ALIVE


# vLLM's reasoning parser for models with the usual think tags (single tokens).
THINK_PARSER = "deepseek_r1"
THINK_PARSER_TAGS = (model_folder.THINK_START, model_folder.THINK_END)


def grammars_wait_for_thinking(engine_args: Any, think: tuple[str, str] | None) -> bool:
    """Make structured outputs apply to the answer only, as `vllm serve --reasoning-parser`
    does: vLLM's grammar starts once its reasoning parser sees thinking end. `think` is the
    model's (start, end) delimiters when they are single tokens, else None. A parser the
    user named is kept; for the usual tags vLLM's DeepSeek-R1 parser is set, for the
    grammar only (not vLLM's own thinking budget). False: no parser knows where this
    model's thinking ends."""
    if engine_args.reasoning_parser:
        return True
    if think != THINK_PARSER_TAGS:
        return False
    engine_args.structured_outputs_config.reasoning_parser = THINK_PARSER
    return True
