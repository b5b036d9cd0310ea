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
minimum stays on the logits' device: no host sync per step.

Cost: `ConfidenceFeed` feeds all of a batch's rows with a handful of tensor ops per step
(one log-softmax, one gather, one minimum). Fed row by row, the same small ops cost about
10 µs per row and step on CPU, a few per cent of a decode step of the testbed model.
A token is scored only when its request was fed at the step just before (the step whose
log-probabilities drew it); a request that missed a step (preempted, or a gap in its
output) skips the tokens it cannot score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

FLOOR = -30.0


class SampledConfidence:
    """One request's running minimum of sampled-token log-probabilities, reset at cues
    (fed by a `ConfidenceFeed`)."""

    def __init__(self, cue_ids: frozenset[int]) -> None:
        self.cue_ids = cue_ids
        self._seen: tuple[int, int, int] | None = None  # (output length, feed step, row)
        self._low: torch.Tensor | None = None  # minimum since the previous cue
        self._at_cue: torch.Tensor | None = None  # the value of the latest cue

    def value(self) -> torch.Tensor:
        """The feature of the latest cue, as a 1-element float32 tensor (0 = certain)."""
        if self._at_cue is None:
            return torch.zeros(1)
        return self._at_cue.reshape(1).float()


class ConfidenceFeed:
    """Feeds the `SampledConfidence` of every tracked row of a batch, one step at a time."""

    def __init__(self) -> None:
        self._step = 0
        self._logprobs: torch.Tensor | None = None  # the previous step's, (rows, vocab)

    def step(
        self, rows: Iterable[tuple[int, Sequence[int], SampledConfidence]], logits: torch.Tensor
    ) -> None:
        """Feed one step: for each tracked request its batch row, its output so far and
        its tracker; `logits` is the batch's (rows, vocab) matrix as this step received it.

        A request fed again at the same output length (vLLM runs processors for
        chunked-prefill samples it discards) has nothing scored; the latest step's row
        is the one its next token will be drawn from.
        """
        self._step += 1
        vocab = logits.shape[-1]
        picks, scored, fed = [], [], False  # picks: flat indices into the previous step's
        for index, output_ids, tracker in rows:
            fed = True
            n = len(output_ids)
            seen = tracker._seen
            if seen is not None and seen[0] == n - 1 and seen[1] == self._step - 1:
                token = output_ids[n - 1]
                if token in tracker.cue_ids:
                    tracker._at_cue, tracker._low = tracker._low, None
                else:
                    picks.append(seen[2] * vocab + token)
                    scored.append(tracker)
            tracker._seen = (n, self._step, index)
        if scored:
            prev = self._logprobs
            lp = torch.take(prev, torch.tensor(picks, device=prev.device)).clamp(min=FLOOR)
            none = torch.full((), float("inf"), device=prev.device)
            low = torch.stack([none if t._low is None else t._low for t in scored])
            for tracker, value in zip(scored, torch.minimum(low, lp).unbind(), strict=True):
                tracker._low = value
        # Only a step with tracked rows keeps its log-probabilities (a batch's worth).
        self._logprobs = torch.log_softmax(logits.float(), dim=-1) if fed else None


def probe_input(hidden: torch.Tensor, confidence: SampledConfidence | None) -> torch.Tensor:
    """What a probe reads at a cue: the hidden features, then the confidence value when
    the probe reads it (calibration and serving both build their features here)."""
    if confidence is None:
        return hidden
    return torch.cat([hidden, confidence.value().to(hidden.device)])
