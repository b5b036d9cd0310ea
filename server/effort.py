"""A model's effort table as the server holds it (what effort *means* for a request is
decided in server/plan.py).

A calibrated model folder holds an effort table (probes/effort_table.py): budgets for a
grid of efforts e in [0, 1] such that, on the calibration set, effort e spends about
e x the natural mean thinking length, plus the fraction each of OpenAI's
`reasoning_effort` levels stands for. Where `thinkctl calibrate` also fitted a length
predictor, the table holds per-query points too (probes/effort_table.QueryBudget): each
query's budget from its predicted natural length, which the engine computes at prefill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from thinkctl.probes import effort_table, length_predictor, model_folder
from thinkctl.probes.effort_table import CombinedPoint, QueryBudget
from thinkctl.probes.length_predictor import LengthPredictor


@dataclass(frozen=True)
class EffortMap:
    points: tuple[tuple[float, int], ...] = ()  # (effort, budget), increasing; empty: uncalibrated
    natural_mean: float | None = None
    fractions: dict[str, float] = field(default_factory=dict)  # level -> effort, if calibrated
    source: str | None = None  # the calibration folder it was read from
    tokenizer_sha256: str | None = None  # the tokenizer it was counted in, when recorded
    # Per-query points, by increasing effort, and the predictor they need (both or neither).
    query: tuple[QueryBudget, ...] = ()
    length_layers: tuple[int, ...] = ()  # the blocks the predictor reads
    made_by: str | None = None  # the command that wrote the table, when recorded
    # Effort as one policy of a probe and a budget, and the checksum of that probe.
    combined: tuple[CombinedPoint, ...] = ()
    combined_probe: str | None = None
    answer_reserve: int | None = None  # tokens for the answer after a forced close, if sized

    @property
    def length_dir(self) -> str | None:
        """The length predictor's folder, when effort is per query."""
        folder = Path(self.source or ".") / length_predictor.SUBFOLDER
        return str(folder.resolve()) if self.query else None

    @property
    def per_query(self) -> bool:
        return bool(self.query)

    def combined_for(self, probe_sha256: str | None) -> tuple[CombinedPoint, ...]:
        """The combined points, when they were fitted with this probe (else none)."""
        return self.combined if probe_sha256 == self.combined_probe else ()

    def combined_point(self, effort: float) -> CombinedPoint:
        """The combined point nearest `effort` (the grid's step is 0.05)."""
        return min(self.combined, key=lambda c: abs(c.effort - effort))

    def query_budget(self, effort: float) -> QueryBudget:
        """The per-query point nearest `effort` (the grid's step is 0.05)."""
        return min(self.query, key=lambda q: abs(q.effort - effort))

    @property
    def calibrated(self) -> bool:
        return bool(self.points)

    def budget(self, effort: float) -> int:
        """Linear interpolation between calibrated points, rounded up."""
        if not self.points:
            raise ValueError("this model has no effort calibration")
        es = [e for e, _ in self.points]
        if effort <= es[0]:
            return self.points[0][1]
        for (e0, b0), (e1, b1) in zip(self.points, self.points[1:], strict=False):
            if effort <= e1:
                return math.ceil(b0 + (b1 - b0) * (effort - e0) / (e1 - e0))
        return self.points[-1][1]

    @classmethod
    def load(cls, model: str | Path, calibration: str | Path | None = None) -> EffortMap:
        """The table of `model`'s calibration folder (probes/model_folder.py: the model
        folder itself, the cache by hub id, or `calibration` when given)."""
        folder = model_folder.calibration_dir(model, calibration)
        table = effort_table.read(folder)
        if table is None:
            return cls()
        points = tuple((float(e), int(b)) for e, b in table["points"])
        fractions = {k: float(v) for k, v in table["levels"].items()}
        predictor = LengthPredictor.load(folder / length_predictor.SUBFOLDER)
        query = effort_table.query_points(table) if predictor is not None else ()
        combined, probe = effort_table.combined_points(table) if query else ((), None)
        return cls(points, table.get("natural_mean_thinking_tokens"), fractions, str(folder),
                   table.get("model", {}).get("tokenizer_sha256"), query,
                   predictor.layers if query else (),
                   table.get("calibration", {}).get("command"), combined, probe,
                   (table.get("answer_reserve") or {}).get("tokens"))  # fmt: skip
