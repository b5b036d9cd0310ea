"""`thinkctl serve`.

    thinkctl serve                                   # the embedded default (the testbed)
    thinkctl serve --model smollm2-135m-instruct     # another embedded model, by name
    thinkctl serve --model PATH_OR_HUB_ID [vLLM engine args...]   # or: serve PATH_OR_HUB_ID

Engine arguments are vLLM's own (`--max-model-len`, `--dtype`, `--tensor-parallel-size`,
`--gpu-memory-utilization`, `--enforce-eager`, ...), parsed by vLLM and passed through.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import signal
import sys
import time
from pathlib import Path

import uvloop

from thinkctl.engine import args as engine_cli
from thinkctl.engine import runner as model_runner
from thinkctl.errors import CommandError, FolderError
from thinkctl.models import resolve
from thinkctl.models.preset import Preset
from thinkctl.probes import model_folder
from thinkctl.probes.model_folder import Conventions
from thinkctl.server.config import ANSWER_RESERVE, ServerConfig
from thinkctl.server.effort import EffortMap
from thinkctl.server.limits import Limits
from thinkctl.server.probe_config import ProbeConfig

DEFAULTS = Conventions()
log = logging.getLogger("uvicorn.error")


def _add_serve_args(parser: argparse.ArgumentParser) -> None:
    # vLLM's parser rewrites `serve --model X` into the positional form `serve X`.
    parser.add_argument("model_tag", nargs="?", default=None, help="Model path or hub id.")
    engine_cli.add_engine_args(parser)
    # None marks "not given", so the embedded model and the CPU memory default apply.
    parser.set_defaults(model=None, gpu_memory_utilization=None)
    g = parser.add_argument_group("thinkctl")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=8000)
    g.add_argument(
        "--api-key",
        default=os.environ.get("THINKCTL_API_KEY"),
        help="Require this bearer key on /v1 routes (default: $THINKCTL_API_KEY). Keys on "
        "the command line show in `ps`: prefer the variable or --api-key-file.",
    )
    g.add_argument(
        "--api-key-file",
        type=Path,
        default=os.environ.get("THINKCTL_API_KEY_FILE"),
        help="File with accepted keys, one per line (default: $THINKCTL_API_KEY_FILE).",
    )
    lim = parser.add_argument_group("limits (overflow is a 429/503 with Retry-After)")
    lim.add_argument("--max-prompt-tokens", type=int, help="Longest prompt (default: context).")
    lim.add_argument("--max-completion-tokens", type=int,
                     help="Cap on max_tokens; also its default.")  # fmt: skip
    lim.add_argument("--max-n", type=int, default=16, help="Most choices per request.")
    lim.add_argument("--max-concurrent-requests", type=int, default=256,
                     help="Requests running at once; more wait in the queue.")  # fmt: skip
    lim.add_argument("--max-queued-requests", type=int, default=1024,
                     help="Requests waiting for a slot; more are refused with a 429.")  # fmt: skip
    lim.add_argument("--queue-timeout", type=float, default=30.0,
                     help="Seconds a request may wait for a slot before a 503.")  # fmt: skip
    lim.add_argument("--request-timeout", type=float,
                     help="Seconds a request may run (queueing excluded); then it is aborted "
                     "and answered 504 (an error event in a stream). Default: none.")  # fmt: skip
    g.add_argument(
        "--model-runner", choices=model_runner.RUNNERS, default=None,
        help="vLLM's model runner: v1 (default; pinned, verified end to end on CPU) or v2 "
        "(Model Runner V2, vLLM's GPU default; thinkctl's V2 adapter, without LYNX or "
        "per-query length). Carried to calibrate and bench through THINKCTL_MODEL_RUNNER.",
    )  # fmt: skip
    g.add_argument(
        "--answer-reserve", type=int, default=None, metavar="N",
        help="Tokens kept for the answer when max_tokens (from the request, the preset, the "
        "generation config or --max-completion-tokens) would run out inside thinking: a "
        "quarter of max_tokens, at most N. Default: the model's calibration (a high "
        f"percentile of its answers' length), else {ANSWER_RESERVE}. A request's "
        "thinkctl.answer_reserve overrides it, 0 turns it off.",
    )  # fmt: skip
    g.add_argument(
        "--reasoning-field",
        choices=["reasoning", "reasoning_content"],
        default="reasoning",
        help="Response field for thinking text: vLLM's `reasoning` or DeepSeek/SGLang's "
        "`reasoning_content`.",
    )
    # Defaults of these four: the model folder's thinkctl.json, else probes/model_folder.py's.
    g.add_argument("--think-start",
                   help=f"Start-of-thinking token (default {DEFAULTS.think_start}).")  # fmt: skip
    g.add_argument("--think-end",
                   help=f"End-of-thinking token (default {DEFAULTS.think_end}).")  # fmt: skip
    g.add_argument(
        "--answer-inducer",
        help="Text forced after the end of thinking when a maximum budget closes it "
        f"(default: {DEFAULTS.answer_inducer!r}).",
    )
    g.add_argument("--wait-string", help="Text injected below a minimum thinking budget "
                   f"(default {DEFAULTS.wait_string}).")  # fmt: skip
    g.add_argument("--uvicorn-log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug", "trace"],
                   help="uvicorn's log level (thinkctl's start-up lines are INFO).")  # fmt: skip
    g.add_argument("--enable-auto-tool-choice", action="store_true",
                   help='As in vLLM: tool_choice "auto" (the default with tools) parses tool '
                   "calls out of the answer with --tool-call-parser.")  # fmt: skip
    g.add_argument("--tool-call-parser", metavar="NAME",
                   help="vLLM's tool-call parser for the model's format, e.g. hermes "
                   "(Qwen3).")  # fmt: skip
    g.add_argument(
        "--probe",
        type=Path,
        help="LYNX probe folder (from `thinkctl calibrate`): enables `thinkctl.lynx` and "
        "effort through the probe. Default: the calibration folder's probe/, where "
        "calibrate writes it. Its hidden-state hooks run in compiled graphs too; vLLM's "
        "compile cache is off for this engine.",
    )
    g.add_argument("--no-probe", action="store_true",
                   help="Serve without the probe the calibration folder holds.")  # fmt: skip
    g.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="The model's calibration folder (its effort.json). Default: the model folder "
        "itself, else THINKCTL_CACHE (~/.cache/thinkctl)/calibration/ORG--NAME for a hub id.",
    )
    g.add_argument(
        "--preset",
        metavar="ID",
        help="Apply this catalogue model's preset (`thinkctl models`) to --model, e.g. to a "
        "local copy of it. Default: the preset of --model when that is a catalogue id.",
    )
    g.add_argument(
        "--no-preset-instruction",
        action="store_true",
        help="Do not add the preset's recommended instruction (e.g. R1-Distill's "
        "boxed-answer line) to prompts. A length prompt (L1) still applies.",
    )


def _cannot_start(model: str, exc: Exception) -> CommandError:
    hint = ""
    if not Path(model).exists():
        hint = (
            " If the model hub is unreachable from this machine, download the model elsewhere "
            "and pass its local folder with --model PATH."
        )
        hint = resolve.unreachable_hint(model) or hint  # a catalogue id: keep its preset
    reason = str(exc).strip().rstrip(".")
    return CommandError(f"could not start the engine for {model!r}: {reason}.{hint}")


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _api_keys(args: argparse.Namespace) -> tuple[str, ...]:
    keys = [args.api_key] if args.api_key else []
    if args.api_key_file:
        try:
            lines = Path(args.api_key_file).read_text().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read --api-key-file: {exc.strerror}") from exc
        found = [k for k in (line.strip() for line in lines) if k and not k.startswith("#")]
        if not found:  # serving without auth is not what a key file asks for
            raise CommandError(f"--api-key-file {str(args.api_key_file)!r} holds no key")
        keys += found
    return tuple(keys)


@functools.cache
def _load_tokenizer(name: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)


def _tokenizer(args: argparse.Namespace, model: str):
    """The served model's tokenizer, loaded once for the start-up checks."""
    return _load_tokenizer(args.tokenizer or model, bool(args.trust_remote_code))


def _probe(args: argparse.Namespace, model: str, conv: Conventions) -> ProbeConfig | None:
    """The probe to serve: --probe, else the one the calibration folder holds (unless
    --no-probe)."""
    if args.probe is not None and args.no_probe:
        raise CommandError("--probe and --no-probe contradict each other")
    if args.probe is not None:
        return _load_probe(args.probe, args, model, conv, "--probe")
    found = None if args.no_probe else model_folder.probe_dir(model, args.calibration)
    return found and _load_probe(found, args, model, conv, "the calibration folder")


def _load_probe(
    folder: Path, args: argparse.Namespace, model: str, conv: Conventions, source: str
) -> ProbeConfig:
    """The probe, checked against the model and the exit sequence this server forces,
    before the engine starts (a clear refusal)."""
    from transformers import AutoConfig

    from thinkctl.errors import ProbeError
    from thinkctl.probes.artifact import ProbeArtifact
    from thinkctl.probes.features import model_facts

    try:
        artifact = ProbeArtifact.load(folder)
        hf = AutoConfig.from_pretrained(model, trust_remote_code=args.trust_remote_code)
        tok = _tokenizer(args, model)
        artifact.check_model(model_facts(hf, tok))
        artifact.check_exit(model_folder.ThinkTokens.of(conv, tok).close())
    except ProbeError as exc:
        opt_out = "" if source == "--probe" else "; --no-probe serves without it"
        raise CommandError(f"refusing probe {str(folder)!r} (from {source}) for {model!r}: "
                           f"{exc}{opt_out}") from exc  # fmt: skip
    probe = ProbeConfig.from_artifact(str(folder.resolve()), artifact, source)
    training = artifact.meta.training
    log.info("LYNX probe: %s, from %s (made on %s, %s labels, temperature %s)", probe.path,
             source, training.get("data", "?"), training.get("labels", "gold"),
             training.get("temperature", "?"))  # fmt: skip
    return probe


async def _serve(config: ServerConfig, engine_args) -> None:
    import uvicorn

    from thinkctl.engine.client import Engine
    from thinkctl.server import plan
    from thinkctl.server.app import create_app
    from thinkctl.server.deps import AppContext
    from thinkctl.server.draining import DrainingServer
    from thinkctl.server.limits import Admission
    from thinkctl.server.model_info import ModelInfo

    probe, effort = config.probe, config.effort
    # The engine captures the probe's blocks, else the length predictor's (which a probe's
    # must then include: checked at start-up, _effort).
    layers = tuple(probe.summary["layers"]) if probe else effort.length_layers
    length_dir = effort.length_dir
    try:
        engine = Engine.start(engine_args, probe and probe.path, layers, length_dir)
    except CommandError:
        raise
    except Exception as exc:
        raise _cannot_start(engine_args.model, exc) from exc
    try:
        if layers:
            try:
                await engine.check_capture()
            except RuntimeError as exc:
                what = f"probe {probe.path!r}" if probe else f"length predictor in {length_dir!r}"
                raise CommandError(f"refusing {what}: {exc}") from exc
        think = model_folder.ThinkTokens.of(config.conventions, engine.tokenizer)
        info = ModelInfo(config.model_name, think, engine.max_model_len,
                         _tool_parser(config.tool_call_parser, engine.tokenizer),
                         engine.sampling_defaults, engine.max_logprobs)  # fmt: skip
        log.info("Sampling defaults (generation config, then preset): %s",
                 plan.sampling_defaults(info, config) or "vLLM's")  # fmt: skip
        admission = Admission(config.limits)
        ctx = AppContext(config, engine, info, int(time.time()), admission)
        app = create_app(ctx)
        # uvicorn drains on SIGTERM, then re-raises it under the handler it found; the
        # default one would kill the process here and leave the engine's processes behind.
        signal.signal(signal.SIGTERM, _exit_quietly)
        uv = uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                            timeout_keep_alive=engine_cli.http_keep_alive_s())  # fmt: skip
        server = DrainingServer(uv, admission)
        watchdog = asyncio.create_task(_stop_when_engine_dies(engine, server))
        await server.serve()
        watchdog.cancel()
        if engine.dead:  # as `vllm serve` does: exit, so that a supervisor restarts us
            raise CommandError("the engine died; the server stopped.")
    finally:
        engine.shutdown()


async def _stop_when_engine_dies(engine, server) -> None:
    """In-flight requests fail with the engine (503s, error events); then the server stops."""
    while not engine.dead:
        await asyncio.sleep(0.5)
    log.error("The engine died: failing in-flight requests and stopping the server.")
    server.should_exit = True


def _tool_parser(name: str | None, tokenizer):
    from thinkctl.engine.tools import AutoToolParser

    try:
        return None if name is None else AutoToolParser(name, tokenizer)
    except ValueError as exc:
        raise CommandError(f"{exc}") from exc


def _grammars_after_thinking(args: argparse.Namespace, engine_args, conv: Conventions) -> bool:
    """Whether structured outputs can wait for the end of thinking (engine/args.py)."""
    think = model_folder.ThinkTokens.of(conv, _tokenizer(args, args.model))
    delims = (conv.think_start, conv.think_end) if think.thinks else None
    return engine_cli.grammars_wait_for_thinking(engine_args, delims)


def conventions(args: argparse.Namespace, model: str, preset=None) -> Conventions:
    """The model folder's conventions (probes/model_folder.py) under the preset and flags."""
    flags = {key: getattr(args, key) for key in Conventions.keys()}
    try:
        return model_folder.conventions(model, preset and preset.control_defaults(), flags)
    except FolderError as exc:
        raise CommandError(f"{exc}") from exc


def _effort(
    model: str, calibration: Path | None, args: argparse.Namespace, probe: ProbeConfig | None
) -> EffortMap:
    """The model's effort table, refused (before the engine starts) when it was counted in
    another tokenizer's tokens, or when its length predictor reads blocks the probe's
    capture does not hold."""
    effort = EffortMap.load(model, calibration)
    if effort.per_query and probe is not None:
        missing = set(effort.length_layers) - set(probe.summary["layers"])
        if missing:
            raise CommandError(
                f"the length predictor in {effort.source!r} reads blocks "
                f"{sorted(missing)}, which the probe does not capture (it reads "
                f"{probe.summary['layers']}); calibrate both in one run"
            )
    if calibration is not None and not effort.calibrated:
        raise CommandError(f"--calibration {str(calibration)!r} holds no effort.json")
    if effort.tokenizer_sha256 is not None:
        from thinkctl.probes.features import tokenizer_sha256

        if tokenizer_sha256(_tokenizer(args, model)) != effort.tokenizer_sha256:
            raise CommandError(f"refusing the effort table in {effort.source!r} for "
                             f"{model!r}: it was made for another tokenizer")  # fmt: skip
    return effort


def _log_effort(config: ServerConfig) -> None:
    from thinkctl.server.plan import effort_policy

    policy, effort, probe = effort_policy(config), config.effort, config.probe
    why = ""
    if policy == "lynx" and effort.combined:
        why = " (the effort table's combined points were fitted with another probe)"
    made = (f", from {effort.source} (made by: {effort.made_by or 'not recorded'})"
            if effort.calibrated else " (uncalibrated: fixed caps per level)")  # fmt: skip
    log.info("Effort by default: %s%s%s", {
        "combined": "one policy of the probe's exit and the per-query budget",
        "lynx": "the probe's effort points", "per_query": "per-query budgets",
        "budget": "the global cap"}[policy], made, why)  # fmt: skip
    if probe is not None and policy != "combined" and effort.per_query:
        log.info('Per-query budgets stay available as thinkctl.effort_policy "query"')


def _configure_logging(level: str) -> None:
    """uvicorn's logging, as uvicorn.Config sets it up later: before it, the start-up lines
    below would go to a logger with no handler, and INFO would be dropped."""
    import logging.config

    from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    log.setLevel(LOG_LEVELS[level])


def serve(args: argparse.Namespace) -> None:
    _configure_logging(args.uvicorn_log_level)
    if args.model_runner:
        os.environ[model_runner.RUNNER_ENV] = model_runner.choose(args.model_runner)
    target = resolve.resolve(args.model_tag or args.model, args.preset)
    model, name = target.load, target.name
    preset = Preset(target.entry, not args.no_preset_instruction) if target.entry else None
    args.model = model
    conv = conventions(args, model, preset)
    probe = _probe(args, model, conv)
    if not args.served_model_name:
        args.served_model_name = [name]
    config = ServerConfig(
        model_name=args.served_model_name[0],
        host=args.host,
        port=args.port,
        api_keys=_api_keys(args),
        reasoning_field=args.reasoning_field,
        answer_reserve=args.answer_reserve,
        log_level=args.uvicorn_log_level,
        effort=_effort(model, args.calibration, args, probe),
        probe=probe,
        preset=preset,
        default_max_tokens=preset.entry.sampling.max_tokens if preset else None,
        limits=Limits(
            max_prompt_tokens=args.max_prompt_tokens,
            max_completion_tokens=args.max_completion_tokens,
            max_n=args.max_n,
            max_concurrent=args.max_concurrent_requests,
            max_queued=args.max_queued_requests,
            queue_timeout_s=args.queue_timeout,
            request_timeout_s=args.request_timeout,
        ),
        conventions=conv,
        auto_tool_choice=args.enable_auto_tool_choice,
        tool_call_parser=args.tool_call_parser,
    )
    _log_effort(config)
    from thinkctl.server.plan import answer_reserve

    log.info("Answer reserve: at most %s tokens (%s)", *answer_reserve(config))
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise CommandError("--enable-auto-tool-choice needs --tool-call-parser")
    if args.tool_call_parser:
        from thinkctl.engine.tools import parser_names

        if args.tool_call_parser not in parser_names():
            raise CommandError(f"unknown --tool-call-parser {args.tool_call_parser!r}; "
                             f"vLLM has {parser_names()}")  # fmt: skip
    try:
        engine_args = engine_cli.engine_args(args)  # vLLM reads the model's config here already
        grammar_after_thinking = _grammars_after_thinking(args, engine_args, config.conventions)
    except Exception as exc:
        raise _cannot_start(model, exc) from exc
    config = dataclasses.replace(config, grammar_after_thinking=grammar_after_thinking)
    # vLLM's own server runs on uvloop: the same loop keeps the HTTP side of the serving
    # benchmark like for like (bench/serve.py counts its CPU per token).
    uvloop.run(_serve(config, engine_args))


def main(argv: list[str] | None = None) -> None:
    """`thinkctl serve ARGS` (argv without the subcommand)."""
    parser = engine_cli.parser("thinkctl serve", __doc__.split("\n\n")[0])
    _add_serve_args(parser)
    serve(parser.parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
