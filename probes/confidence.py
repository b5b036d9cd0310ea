"""The sampled-token confidence feature: the lowest log-probability among the tokens the
model sampled since the previous cue (the first segment starts at the first output token).

Why beside the hidden state: a slip is often a token the model itself found unlikely, and
the residual stream at a later cue need not remember it (on the testbed it does not:
its re-checks look the same whether or not the first pass slipped, so nothing teaches
the model to notice). Token-level confidence of this kind is what DeepConf-style trace
filtering reads; here it is one more probe input, appended after the hidden features.

Definition, the same in calibration (calibration/recorder.py) and serving
(server/engine/logits_processor.py), both logits processors: at each step a row's logits
(as the processor receives them, before temperature and before thinkctl's own actions)
are turned into log-probabilities; at the next step the token the request actually got
is looked up there. A cue's value covers the tokens after the previous cue up to the
cue, itself excluded: which cue word comes, and whether one comes at all, is a choice
the model makes at every re-check, not a sign of a slip. Then the minimum starts again.
Values are floored at `FLOOR` so that a forced token cannot make it infinite. The
minimum stays on the logits' device: no host sync per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOOR = -30.0


class SampledConfidence:
    """Per-request running minimum of sampled-token log-probabilities, reset at cues."""

    def __init__(self, cue_ids: frozenset[int]) -> None:
        self.cue_ids = cue_ids
        self._prev: tuple[int, torch.Tensor] | None = None  # (output length, log-probs)
        self._low: torch.Tensor | None = None  # minimum since the previous cue
        self._at_cue: torch.Tensor | None = None  # the value of the latest cue

    def observe(self, output_ids: Sequence[int], logits: torch.Tensor) -> None:
        """Feed one step: the request's output so far and this step's (vocab,) logits row.

        Calling it again at the same output length only replaces the stored row (vLLM
        runs processors for chunked-prefill samples it discards; the last call of a step
        has the logits that were sampled).
        """
        n = len(output_ids)
        prev = self._prev
        if prev is not None and prev[0] == n - 1:  # the token at n - 1 was drawn from prev
            token = output_ids[n - 1]
            if token in self.cue_ids:
                self._at_cue, self._low = self._low, None
            else:
                lp = prev[1][token].clamp(min=FLOOR)
                self._low = lp if self._low is None else torch.minimum(self._low, lp)
        self._prev = (n, torch.log_softmax(logits.float(), dim=-1))

    def value(self) -> torch.Tensor:
        """The feature of the latest cue, as a 1-element float32 tensor (0 = certain)."""
        if self._at_cue is None:
            return torch.zeros(1)
        return self._at_cue.reshape(1).float()


def probe_input(hidden: torch.Tensor, confidence: SampledConfidence | None) -> torch.Tensor:
    """What a probe reads at a cue: the hidden features, then the confidence value when
    the probe reads it (calibration and serving both build their features here)."""
    if confidence is None:
        return hidden
    return torch.cat([hidden, confidence.value().to(hidden.device)])
