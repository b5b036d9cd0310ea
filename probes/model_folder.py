"""What a model folder says about thinking: the one reader of it, for `serve`, `calibrate`,
`bench` and `recipes` alike, so the same folder yields the same close sequence everywhere.

Conventions come in layers, each above the one before:
1. the defaults below (R1-style `<think>`/`</think>`, s1's "Wait");
2. a catalogue preset's conventions (only `serve` knows presets and passes them in);
3. the folder's own `thinkctl.json` (e.g. the testbed's `\\boxed{` answer inducer);
4. explicit flags.

`ThinkTokens` resolves them against the model's tokenizer: the delimiters' ids (each must
be exactly one token, else the model is served as non-thinking), the EOS ids and the
close sequence `[think_end, *inducer ids]` that every forced exit appends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from thinkctl.errors import FolderError

THINK_START = "<think>"
THINK_END = "</think>"
# Forced after the end-of-thinking token when a budget or an exit closes thinking (s1).
ANSWER_INDUCER = "\nFinal Answer:"
# Injected when the model tries to stop thinking below a minimum budget (s1).
WAIT_STRING = "Wait"
SETTINGS_FILE = "thinkctl.json"
# What `thinkctl calibrate` leaves for `serve`, inside a calibration folder.
PROBE_DIR = "probe"
CALIBRATION_FILES = ("effort.json", PROBE_DIR)


@dataclass(frozen=True)
class Conventions:
    """How a model delimits thinking and how a forced exit closes it, as text."""

    think_start: str = THINK_START
    think_end: str = THINK_END
    answer_inducer: str = ANSWER_INDUCER
    wait_string: str = WAIT_STRING

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def over(self, values: Mapping[str, str | None] | None) -> Conventions:
        """These conventions with the non-None `values` on top (unknown keys are an error)."""
        values = {k: v for k, v in (values or {}).items() if v is not None}
        unknown = set(values) - set(self.keys())
        if unknown:
            raise FolderError(f"unknown conventions {sorted(unknown)}")
        return replace(self, **values)


def local_folder(model: str | Path) -> Path | None:
    """`model` as a local folder, or None for a hub id."""
    path = Path(model)
    return path if path.is_dir() else None


def cache_root() -> Path:
    """thinkctl's cache: THINKCTL_CACHE, else ~/.cache/thinkctl."""
    return Path(os.environ.get("THINKCTL_CACHE") or Path.home() / ".cache" / "thinkctl")


def calibration_dir(model: str | Path, explicit: str | Path | None = None) -> Path:
    """Where a model's calibration lives (CALIBRATION_FILES), for `serve` to find it by
    itself: `explicit` (`--calibration DIR`) when given; else a local model folder itself
    when it holds a calibration or can be written; else the cache, by model id
    (`cache_root()/calibration/ORG--NAME` for the hub id ORG/NAME; a read-only folder by
    its resolved path, '/' written as '--')."""
    if explicit is not None:
        return Path(explicit)
    folder = local_folder(model)
    if folder is not None:
        if any((folder / f).exists() for f in CALIBRATION_FILES) or os.access(folder, os.W_OK):
            return folder
        model = str(folder.resolve()).strip("/")
    return cache_root() / "calibration" / str(model).replace("/", "--")


def probe_dir(model: str | Path, calibration: str | Path | None = None) -> Path | None:
    """The LYNX probe `calibrate` left in the model's calibration folder, which `serve`,
    `bench` and `doctor` use with no flag; None when there is none."""
    folder = calibration_dir(model, calibration) / PROBE_DIR
    return folder if (folder / "probe.json").is_file() else None  # probes/artifact.META_FILE


def read_settings(model: str | Path) -> dict[str, str]:
    """The folder's thinkctl.json ({} for a hub id or a folder without one)."""
    folder = local_folder(model)
    path = folder / SETTINGS_FILE if folder else None
    if path is None or not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    unknown = set(saved) - set(Conventions.keys())
    if unknown:
        raise FolderError(f"{path} has unknown keys {sorted(unknown)}")
    return saved


def conventions(
    model: str | Path,
    preset: Mapping[str, str] | None = None,
    flags: Mapping[str, str | None] | None = None,
) -> Conventions:
    """Defaults, then the preset's, then the folder's thinkctl.json, then the flags."""
    return Conventions().over(preset).over(read_settings(model)).over(flags)


def single_token_id(tokenizer: Any, text: str) -> int | None:
    """The id of `text` if the tokenizer keeps it as exactly one token, else None."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


@dataclass(frozen=True)
class ThinkTokens:
    """Conventions resolved against a tokenizer."""

    conventions: Conventions
    tokenizer: Any
    start: int | None  # None: not a single token, so the model is served as non-thinking
    end: int | None
    eos: frozenset[int]

    @classmethod
    def of(cls, conv: Conventions, tokenizer: Any) -> ThinkTokens:
        eos = tokenizer.eos_token_id
        return cls(
            conv,
            tokenizer,
            single_token_id(tokenizer, conv.think_start),
            single_token_id(tokenizer, conv.think_end),
            frozenset([eos] if eos is not None else []),
        )

    @property
    def thinks(self) -> bool:
        return self.start is not None and self.end is not None

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def require_end(self) -> int:
        if self.end is None:
            raise FolderError(f"{self.conventions.think_end!r} is not one token of this tokenizer")
        return self.end

    def close(self, inducer: str | None = None) -> list[int]:
        """What a forced exit appends: the end of thinking, then the answer inducer (the
        conventions' unless `inducer` is given; "" closes bare)."""
        text = self.conventions.answer_inducer if inducer is None else inducer
        return [self.require_end(), *self.encode(text)]

    def wait(self, text: str | None = None) -> list[int]:
        return self.encode(self.conventions.wait_string if text is None else text)


def read(
    model: str | Path,
    tokenizer: Any = None,
    preset: Mapping[str, str] | None = None,
    flags: Mapping[str, str | None] | None = None,
) -> ThinkTokens:
    """The folder's conventions resolved against its tokenizer (loaded when not given)."""
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model))
    return ThinkTokens.of(conventions(model, preset, flags), tokenizer)
