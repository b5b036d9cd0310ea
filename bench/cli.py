"""`thinkctl bench accuracy ...`, `thinkctl bench serve ...` and `thinkctl bench engine ...`."""

from __future__ import annotations

import sys

USAGE = """usage: thinkctl bench {accuracy,serve,engine} [options]

  accuracy   accuracy vs thinking tokens per control setting, with the oracle frontier
  serve      serving cost against plain vLLM, with vLLM's own benchmark client
  engine     the engine side's cost against plain vLLM, paired rounds in one process"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("accuracy", "serve", "engine"):
        print(USAGE, file=sys.stderr if argv else sys.stdout)
        raise SystemExit(0 if argv[:1] in (["-h"], ["--help"]) else 2)
    if argv[0] == "accuracy":
        from thinkctl.bench.accuracy import main as run
    elif argv[0] == "serve":
        from thinkctl.bench.serve import main as run
    else:
        from thinkctl.bench.engine_ab import main as run
    run(argv[1:])


if __name__ == "__main__":
    main()
