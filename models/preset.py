"""A catalogue entry as the server applies it: `thinkctl serve --model ID` / `--preset ID`."""

from __future__ import annotations

from dataclasses import dataclass

from thinkctl.models.schema import CatalogEntry


@dataclass(frozen=True)
class Preset:
    entry: CatalogEntry
    # Add the entry's recommended instruction (e.g. the boxed-answer line) to the last user
    # message. The length prompt of prompt_suffix models is the mechanism and always applies.
    instruction: bool = True

    def control_defaults(self) -> dict[str, str]:
        """ServerConfig settings the preset supplies (a model folder's thinkctl.json and the
        serve flags override them)."""
        out: dict[str, str] = {}
        if self.entry.think is not None:
            out["think_start"], out["think_end"] = self.entry.think
        if self.entry.answer_inducer is not None:
            out["answer_inducer"] = self.entry.answer_inducer
        return out

    def describe(self) -> dict:
        """What /v1/models shows under thinkctl.preset."""
        e = self.entry
        instruction = e.instruction if self.instruction else None
        effort = {lv: a.model_dump(exclude_none=True) for lv, a in e.effort.items()}
        return {
            "id": e.id,
            "family": e.family,
            "mechanism": e.mechanism,
            "effort": effort,
            "default": e.default_action.model_dump(exclude_none=True) if e.default_action else None,
            "length_prompt": e.length_prompt.model_dump() if e.length_prompt else None,
            "instruction": instruction.model_dump() if instruction else None,
            "sampling": e.sampling.model_dump(),
        }
