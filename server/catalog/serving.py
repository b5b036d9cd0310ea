"""Where a catalogue model's weights are, and which preset `thinkctl serve` applies.

    thinkctl serve --model ID                            # a catalogue id: its preset applies
    thinkctl serve --model /path/to/copy --preset ID     # a local copy, with ID's preset
    THINKCTL_MODEL_DIR=/models thinkctl serve --model ID # serves /models/ID if it is there

A catalogue id is looked for, in order: an embedded model (served by name), the folder
$THINKCTL_MODEL_DIR/ID, the Hugging Face cache, the hub. When none of the first three has
it and HF_HUB_OFFLINE is set, serving stops at once with the id and how to provide a copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from server import embedded
from server.catalog.preset import Preset
from server.catalog.schema import CatalogEntry, load

MODEL_DIR_ENV = "THINKCTL_MODEL_DIR"


@dataclass(frozen=True)
class Location:
    kind: Literal["embedded", "local", "hf-cache", "hub", "missing"]
    path: str | None = None

    def label(self) -> str:
        return f"{self.kind}: {self.path}" if self.path else self.kind


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def locate(entry: CatalogEntry) -> Location:
    """Where `entry`'s weights are on this machine (`hub`: only on the hub)."""
    if entry.embedded is not None:
        if entry.embedded not in embedded.NAMES:
            return Location("missing")
        try:
            return Location("embedded", str(embedded.ensure(entry.embedded)))
        except (FileNotFoundError, ValueError):
            return Location("missing")
    root = os.environ.get(MODEL_DIR_ENV)
    if root and (Path(root) / entry.id / "config.json").is_file():
        return Location("local", str(Path(root) / entry.id))
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(entry.id, "config.json")
    if isinstance(cached, str):
        return Location("hf-cache", str(Path(cached).parent))
    return Location("hub")


def unreachable_hint(model_id: str) -> str | None:
    """How to serve catalogue model `model_id` without the hub; None if it is not one."""
    entry = load().find(model_id)
    if entry is None or entry.embedded is not None:
        return None
    return (
        f" Download it where the hub is reachable (`huggingface-cli download {model_id} "
        "--local-dir /path/to/folder`), then serve the folder with this preset: `thinkctl "
        f"serve --model /path/to/folder --preset {model_id}`; or put it at "
        f"${MODEL_DIR_ENV}/{model_id} and keep `--model {model_id}`."
    )


@dataclass(frozen=True)
class Target:
    model: str | None  # passed on to server.cli: an embedded name, a folder or a hub id
    name: str | None  # the served name, when it is not `model` itself
    preset: Preset | None


def _entry(preset_id: str) -> CatalogEntry:
    entry = load().find(preset_id)
    if entry is None:
        ids = ", ".join(m.id for m in load().models)
        raise SystemExit(f"thinkctl: no catalogue model {preset_id!r} (`thinkctl models`): {ids}")
    return entry


def resolve(model: str | None, preset_id: str | None, instruction: bool = True) -> Target:
    """What to load and which preset to apply, for `serve --model MODEL [--preset ID]`."""
    explicit = _entry(preset_id) if preset_id is not None else None
    if model is None and explicit is not None:
        model = explicit.id
    name = model if model is not None else embedded.default_name()
    if (Path(name) / "config.json").is_file():  # a local folder: only an explicit preset
        return Target(model, None, Preset(explicit, instruction) if explicit else None)
    catalog = load()
    entry = catalog.find(name) or catalog.for_embedded(name)
    if entry is None:
        return Target(model, None, Preset(explicit, instruction) if explicit else None)
    preset = Preset(explicit or entry, instruction)
    where = locate(entry)
    if where.kind == "missing":
        raise SystemExit(
            f"thinkctl: the embedded model {entry.embedded!r} ({entry.id}) is not in this "
            "checkout; its folder has not been built or committed yet."
        )
    if where.kind == "local":
        return Target(where.path, entry.id, preset)
    if where.kind == "hub" and _hub_offline():
        raise SystemExit(
            f"thinkctl: {entry.id!r} is a catalogue model that is not on this machine, and the "
            f"model hub is unreachable (HF_HUB_OFFLINE is set).{unreachable_hint(entry.id)}"
        )
    return Target(model, None, preset)
