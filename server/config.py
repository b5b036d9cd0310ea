"""Server configuration: one frozen dataclass, built once from the CLI.

Engine arguments are not here: they are vLLM's own `AsyncEngineArgs`, passed through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from thinkctl.models.preset import Preset
from thinkctl.probes.model_folder import Conventions
from thinkctl.server.effort import EffortMap
from thinkctl.server.limits import Limits
from thinkctl.server.probe_config import ProbeConfig

# The answer reserve's size without --answer-reserve or a calibrated one: room for an
# R1-style summary after a forced close.
ANSWER_RESERVE = 256


@dataclass(frozen=True)
class ServerConfig:
    model_name: str  # the id clients send as `model` and /v1/models lists
    host: str = "127.0.0.1"
    port: int = 8000
    # Any of them is accepted; none: no auth. Kept out of repr, so no log or traceback shows them.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # vLLM's current field name; DeepSeek and SGLang clients expect "reasoning_content".
    reasoning_field: Literal["reasoning", "reasoning_content"] = "reasoning"
    # Think delimiters, answer inducer and wait string: the model folder's, read once by
    # probes/model_folder.py (flags, then thinkctl.json, then the preset, then defaults).
    conventions: Conventions = field(default_factory=Conventions)
    effort: EffortMap = field(default_factory=EffortMap)  # the model's, if calibrated
    probe: ProbeConfig | None = None  # LYNX, when served with --probe
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)
    # The model's catalogue preset (models/): effort -> its own length/mode mechanism,
    # sampling defaults, the recommended instruction. None: requests pass through as sent.
    preset: Preset | None = None
    # --answer-reserve: the answer reserve's largest default size (server/plan.py
    # `answer_reserve`); None: the calibration's, else ANSWER_RESERVE.
    answer_reserve: int | None = None
    # max_tokens for requests that set none (a preset's recommendation); None: the room left
    # in the context.
    default_max_tokens: int | None = None
    # vLLM's --enable-auto-tool-choice: tool_choice "auto" parses calls out of the answer
    # with the --tool-call-parser (server/model_info.py holds the parser).
    auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    # Whether the engine's grammars wait for the end of thinking (a reasoning parser is
    # set, engine/args.py); without it a thinking model refuses structured outputs.
    grammar_after_thinking: bool = True
