"""`thinkctl models`: the catalogue of concise / length-controllable models and their presets.

    thinkctl models               # id, how length/mode is asked for, licence, local copy
    thinkctl models --json        # every field of every entry, machine-readable
    thinkctl models show ID       # one entry: delimiters, effort actions, sampling, numbers
    thinkctl models show ID --json

Serve one with `thinkctl serve --model ID` (its preset applies), or a local copy with
`thinkctl serve --model PATH --preset ID`. Never imports vLLM.
"""

from __future__ import annotations

import argparse
import json
import sys

from thinkctl.models.resolve import locate
from thinkctl.models.schema import CatalogEntry, load


def _licence(entry: CatalogEntry) -> str:
    name = entry.licence.name
    return name if entry.licence.verified or "unverified" in name else f"{name} (unverified)"


def _record(entry: CatalogEntry) -> dict:
    return {**entry.model_dump(mode="json"), "available": locate(entry).label()}


def _table(entries: list[CatalogEntry]) -> str:
    rows = [("ID", "MECHANISM", "LICENCE", "AVAILABLE")]
    for e in entries:
        rows.append((e.id, e.mechanism, _licence(e), locate(e).kind))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    )


def _score(accuracy: float | None, tokens: float | None) -> str:
    parts = [f"{accuracy:g}%" if accuracy is not None else "",
             f"{tokens:g} tokens" if tokens is not None else ""]  # fmt: skip
    return ", ".join(p for p in parts if p)


def _show(entry: CatalogEntry) -> str:
    fmt = load().chat_format(entry)
    lines = [f"{entry.id}  ({entry.family})", f"  {entry.summary}", ""]
    facts = {
        "available": locate(entry).label(),
        "base model": entry.base_model or "-",
        "licence": _licence(entry) + (f" - {entry.licence.note}" if entry.licence.note else ""),
        "think delimiters": " / ".join(entry.think) if entry.think else "none",
        "chat format": f"generation prompt {fmt.generation_prompt!r}",
        "mechanism": entry.mechanism,
        "instruction": f"{entry.instruction.placement}: {entry.instruction.text!r}"
        if entry.instruction
        else "-",
        "length prompt": f"{entry.length_prompt.template!r}, N in "
        f"{entry.length_prompt.min_tokens}..{entry.length_prompt.max_tokens} (default "
        f"{entry.length_prompt.default_tokens}); N = the request's thinking budget"
        if entry.length_prompt
        else "-",
        "sampling": json.dumps(entry.sampling.model_dump(exclude_none=True)),
        "answer inducer": repr(entry.answer_inducer) if entry.answer_inducer else "server default",
    }
    lines += [f"  {k + ':':<18}{v}" for k, v in facts.items()]
    if entry.effort or entry.default_action:
        lines.append("  effort actions:")
        for level, action in entry.effort.items():
            lines.append(f"    {level:<8} {json.dumps(action.model_dump(exclude_none=True))}")
        if entry.default_action:
            unset = entry.default_action.model_dump(exclude_none=True)
            lines.append(f"    (unset)  {json.dumps(unset)}")
    if entry.results:
        lines.append("  reported by the authors:")
        for r in entry.results:
            parts = [_score(r.accuracy, r.tokens)]
            if r.baseline:
                parts.append(f"vs {r.baseline} {_score(r.baseline_accuracy, r.baseline_tokens)}")
            parts.append(r.note)
            lines.append(f"    {r.benchmark}: " + "; ".join(p.strip() for p in parts if p))
            lines.append(f"      {r.source}")
    lines.append("  sources: " + ", ".join(entry.sources))
    if entry.unverified:
        lines.append("  unverified:")
        lines += [f"    - {u}" for u in entry.unverified]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`thinkctl models [show ID] [--json]` (argv without the subcommand)."""
    parser = argparse.ArgumentParser(prog="thinkctl models", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    parser.add_argument("id", nargs="?", help="catalogue id, for `show`")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    catalog = load()
    if args.action == "show":
        if args.id is None:
            parser.error("show needs a catalogue id")
        entry = catalog.find(args.id)
        if entry is None:
            print(f"thinkctl: no catalogue model {args.id!r}; `thinkctl models` lists them.",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(2)
        text = json.dumps(_record(entry), indent=1, ensure_ascii=False) if args.json else None
        print(text or _show(entry))
        return
    if args.json:
        print(json.dumps([_record(e) for e in catalog.models], indent=1, ensure_ascii=False))
    else:
        print(_table(catalog.models))


if __name__ == "__main__":
    main()
