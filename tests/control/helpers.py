"""Hand-made inputs for controller tests: a 10-token vocabulary."""

import torch

from thinkctl.control.phase import Delimiters

START, END, EOS, WAIT, INDUCE = 1, 2, 3, 4, 5
DELIMS = Delimiters(START, END)
V = 10


def logits(top: int | None = None) -> torch.Tensor:
    """A (V,) row; `top` gets the highest logit."""
    row = torch.zeros(V)
    if top is not None:
        row[top] = 5.0
    return row
