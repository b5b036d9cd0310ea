"""The one resolver: a model name, a folder or a hub id -> what to load, under which name,
with which catalogue entry. serve, calibrate, bench, the testbed's evaluate and the
recipes all call `resolve`.

    thinkctl serve                                       # the embedded default
    thinkctl serve --model testbed-r1                    # an embedded model, by name
    thinkctl serve --model ID                            # a catalogue id: its preset applies
    thinkctl serve --model /path/to/copy --preset ID     # a local copy, with ID's preset
    THINKCTL_MODEL_DIR=/models thinkctl serve --model ID # serves /models/ID if it is there

In order, `model` is:
1. a folder with a `config.json` (a folder wins over an embedded name of the same spelling);
2. an embedded model (models/embedded.py), built on first use;
3. a catalogue id, looked for in $THINKCTL_MODEL_DIR/ID, the Hugging Face cache, then the
   hub (refused at once when HF_HUB_OFFLINE is set, with how to provide a copy);
4. any other `org/name`: a hub id, handed to vLLM and transformers as it is.
Anything else is an `UnknownModel` whose message lists what is known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from thinkctl.errors import ModelUnavailable, UnknownModel
from thinkctl.models import embedded
from thinkctl.models.schema import CatalogEntry, load

MODEL_DIR_ENV = "THINKCTL_MODEL_DIR"

Kind = Literal["folder", "embedded", "local", "hf-cache", "hub"]


@dataclass(frozen=True)
class Location:
    kind: Literal["embedded", "local", "hf-cache", "hub", "missing"]
    path: str | None = None

    def label(self) -> str:
        return f"{self.kind}: {self.path}" if self.path else self.kind


@dataclass(frozen=True)
class Resolved:
    """A model as every command loads it."""

    load: str  # what vLLM and transformers load: a local folder, or a hub id
    name: str  # the name clients use (the served model name)
    kind: Kind
    entry: CatalogEntry | None  # the catalogue entry whose preset applies, if any
    # The folder the package ships this model's files in (metrics, calibration), when that
    # is not `load` itself (testbed-r1 is expanded into the cache from testbed/r1).
    shipped: Path | None = None

    @property
    def folder(self) -> Path:
        """`load` as a local folder; a hub id has none."""
        if self.kind == "hub":
            raise ModelUnavailable(f"{self.load!r} is a hub id, not a folder on this machine")
        return Path(self.load)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def locate(entry: CatalogEntry) -> Location:
    """Where `entry`'s weights are on this machine (`hub`: only on the hub)."""
    if entry.embedded is not None:
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


def catalogue_entry(preset_id: str) -> CatalogEntry:
    """The entry `--preset ID` names; an unknown id lists the known ones."""
    entry = load().find(preset_id)
    if entry is None:
        ids = ", ".join(m.id for m in load().models)
        raise UnknownModel(f"no catalogue model {preset_id!r} (`thinkctl models`): {ids}")
    return entry


def known_names() -> list[str]:
    """Every name `resolve` takes besides a folder or a hub id."""
    return [*embedded.NAMES, *(m.id for m in load().models if m.embedded is None)]


def _looks_like_hub_id(model: str) -> bool:
    org, _, name = model.partition("/")
    return bool(org and name) and "/" not in name and not model.startswith((".", "~"))


def resolve(model: str | None = None, preset: str | None = None) -> Resolved:
    """What to load for `model` (None: the embedded default), and the catalogue entry that
    applies: `preset`'s when given, else the model's own when it is a catalogue model
    (a local folder takes only an explicit preset)."""
    explicit = catalogue_entry(preset) if preset is not None else None
    if model is None:
        model = explicit.id if explicit is not None else embedded.default_name()
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return Resolved(str(path), model, "folder", explicit)
    catalog = load()
    if model in embedded.NAMES:
        try:
            folder = embedded.ensure(model)
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"the embedded model {model!r} is not in this install: "
                                   f"{exc}") from exc  # fmt: skip
        return Resolved(str(folder), model, "embedded", explicit or catalog.for_embedded(model),
                        embedded.shipped_folder(model))  # fmt: skip
    entry = catalog.find(model)
    if entry is not None:
        where = locate(entry)
        if where.kind == "local":
            return Resolved(str(where.path), entry.id, "local", explicit or entry)
        if where.kind == "hub" and _hub_offline():
            raise ModelUnavailable(
                f"{entry.id!r} is a catalogue model that is not on this machine, and the model "
                f"hub is unreachable (HF_HUB_OFFLINE is set).{unreachable_hint(entry.id)}"
            )
        # vLLM and transformers find a Hugging Face cache copy by the id itself.
        kind: Kind = "hf-cache" if where.kind == "hf-cache" else "hub"
        return Resolved(entry.id, entry.id, kind, explicit or entry)
    if path.exists():
        raise UnknownModel(f"{model!r} is not a model folder: it has no config.json")
    if _looks_like_hub_id(model):
        return Resolved(model, model, "hub", explicit)
    raise UnknownModel(
        f"unknown model {model!r}: give a model folder, a hub id (org/name) or one of "
        f"{', '.join(known_names())}"
    )
