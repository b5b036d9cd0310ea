"""`thinkctl SUBCOMMAND ...`: dispatches to the part that owns the subcommand.

Each subcommand lives beside the code it drives (server/, calibration/, bench/), and is
imported only when asked for, so `thinkctl models` does not load vLLM and server/ never
imports calibration/ (or the reverse).
"""

from __future__ import annotations

import importlib
import sys

from thinkctl.errors import CommandError

# subcommand -> (module with `main(argv)`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("thinkctl.server.cli", "Serve a model behind the OpenAI-compatible API."),
    "bench": (
        "thinkctl.bench.cli",
        "Benchmarks: accuracy vs thinking tokens, serving cost vs vLLM.",
    ),
    "calibrate": (
        "thinkctl.calibration.cli",
        "Train and calibrate a LYNX probe for a model.",
    ),
    "doctor": (
        "thinkctl.bench.doctor",
        "Check on this machine that capture and control work, and what control costs.",
    ),
    "models": (
        "thinkctl.models.cli",
        "The catalogue of concise / length-controllable models and their presets.",
    ),
}


def usage() -> str:
    lines = ["usage: thinkctl {" + ",".join(SUBCOMMANDS) + "} ...", "", "subcommands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines.append("\n`thinkctl SUBCOMMAND --help` shows a subcommand's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"thinkctl: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(SUBCOMMANDS[name][0])
    try:
        module.main(rest)
    except CommandError as exc:  # the one place a command's refusal is rendered
        print(f"thinkctl {name}: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
