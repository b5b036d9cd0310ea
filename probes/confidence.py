"""The sampled-token confidence feature: the lowest log-probability among the tokens the
model sampled since the previous cue (the first segment starts at the first output token).

Why beside the hidden state: a slip is often a token the model itself found unlikely, and
the residual stream at a later cue need not remember it (on the testbed it does not:
its re-checks look the same whether or not the first pass slipped, so nothing teaches
the model to notice). Token-level confidence of this kind is what DeepConf-style trace
filtering reads; here it is one more probe input, appended after the hidden features.

Definition, the same in calibration (engine/recorder.py) and serving
(engine/logits_processor.py), both logits processors: at each step a row's logits
(as the processor receives them, before temperature and before thinkctl's own actions)
are turned into log-probabilities; at the next step the token the request actually got
is looked up there. A cue's value covers the tokens after the previous cue up to the
cue, itself excluded: which cue word comes, and whether one comes at all, is a choice
the model makes at every re-check, not a sign of a slip. Then the minimum starts again.
Values are floored at `FLOOR` so that a forced token cannot make it infinite. The
running minimum is kept on the host (on a GPU: one small copy of the picked values per
step).

Cost: the feed keeps its state in arrays indexed by batch row, so a step is a handful of
batched operations whatever the batch size: one log-softmax over the tracked rows only
(the rows of other requests are never touched), one gather, one minimum. That
log-softmax is the floor: a token's log-probability needs its row's normaliser, one pass
over the vocabulary per tracked row and step (bench/results/step_cost.md measures it).
A token is scored only when its request was fed at the step just before (the step whose
log-probabilities drew it); a request that missed a step (preempted, or a gap in its
output) skips the tokens it cannot score.
"""

from __future__ import annotations

import numpy as np
import torch

FLOOR = -30.0


class ConfidenceFeed:
    """The confidence of every tracked request of a batch, indexed by batch row.

    Rows follow their requests through vLLM's batch updates (`move`); a removed request's
    state can be kept (`export`) and given back when it returns (`restore`)."""

    def __init__(self) -> None:
        self._step = 0
        self._seen_n = np.empty(0, np.int64)  # output length when last fed
        self._seen_step = np.empty(0, np.int64)  # the feed step it was fed at
        self._seen_row = np.empty(0, np.int64)  # its row in `_logprobs`
        self._low = np.empty(0, np.float32)  # minimum since the previous cue; inf: none yet
        self._at_cue = np.empty(0, np.float32)  # the latest cue's value; inf: none
        self._logprobs: torch.Tensor | None = None  # the previous step's tracked rows

    def _arrays(self) -> tuple[str, ...]:
        return ("_seen_n", "_seen_step", "_seen_row", "_low", "_at_cue")

    def _grow(self, size: int) -> None:
        old = len(self._seen_n)
        if size <= old:
            return
        pad = max(size, 2 * old, 8) - old
        for name, empty in zip(self._arrays(), (-1, -2, 0, np.inf, np.inf), strict=True):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.full(pad, empty, arr.dtype)]))

    def reset(self, index: int) -> None:
        """Row `index` now holds a new request: nothing seen, no value."""
        self.restore(index, (-1, -2, 0, np.inf, np.inf))

    def export(self, index: int) -> tuple:
        return tuple(getattr(self, name)[index].item() for name in self._arrays())

    def restore(self, index: int, state: tuple) -> None:
        self._grow(index + 1)
        for name, value in zip(self._arrays(), state, strict=True):
            getattr(self, name)[index] = value

    def move(self, a: int, b: int, swap: bool) -> None:
        """Row a's request moves to row b (and b's to a when `swap`)."""
        self._grow(max(a, b) + 1)
        src, dst = ([a, b], [b, a]) if swap else ([a], [b])
        for name in self._arrays():
            arr = getattr(self, name)
            arr[dst] = arr[src]

    def step(
        self,
        rows: np.ndarray,
        lengths: np.ndarray,
        last: np.ndarray,
        cue: np.ndarray,
        logits: torch.Tensor,
    ) -> None:
        """Feed one step. `rows`: the tracked batch rows; per row its output length, its
        latest token (anything when the length is 0) and whether that token is a cue;
        `logits`: the batch's (rows, vocab) matrix as this step received it.

        A request fed again at the same output length (vLLM runs processors for
        chunked-prefill samples it discards) has nothing scored; the latest step's row
        is the one its next token will be drawn from.
        """
        self._step += 1
        if not len(rows):
            self._logprobs = None
            return
        self._grow(int(rows.max()) + 1)
        ok = (self._seen_n[rows] == lengths - 1) & (self._seen_step[rows] == self._step - 1)
        closes = ok & cue
        if closes.any():
            r = rows[closes]
            self._at_cue[r] = self._low[r]
            self._low[r] = np.inf
        scored = ok & ~cue
        if scored.any():
            prev = self._logprobs
            flat = torch.from_numpy(self._seen_row[rows[scored]] * prev.shape[-1] + last[scored])
            lp = torch.take(prev, flat.to(prev.device)).clamp(min=FLOOR).cpu().numpy()
            r = rows[scored]
            self._low[r] = np.minimum(self._low[r], lp)
        self._seen_n[rows] = lengths
        self._seen_step[rows] = self._step
        self._seen_row[rows] = np.arange(len(rows))
        every = len(rows) == logits.shape[0] and bool((rows == np.arange(len(rows))).all())
        tracked = logits if every else logits[torch.from_numpy(rows).to(logits.device)]
        self._logprobs = torch.log_softmax(tracked.float(), dim=-1)

    def value(self, index: int) -> torch.Tensor:
        """The feature of row `index`'s latest cue, a 1-element float32 tensor (0: certain,
        also before any cue)."""
        return self.values(np.array([index]))[0]

    def values(self, rows: np.ndarray) -> torch.Tensor:
        """`value` of several rows: (len(rows), 1)."""
        v = self._at_cue[rows]
        return torch.from_numpy(np.where(np.isinf(v), np.float32(0), v)).unsqueeze(1)


def probe_input(hidden: torch.Tensor, confidence: torch.Tensor | None) -> torch.Tensor:
    """What a probe reads at a cue: the hidden features, then the confidence value
    (`ConfidenceFeed.value`, or `.values` for a batch of rows) when the probe reads it
    (calibration and serving both build their features here)."""
    if confidence is None:
        return hidden
    return torch.cat([hidden, confidence.to(hidden.device)], dim=-1)
