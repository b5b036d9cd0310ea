"""Top-H: entropy-bounded truncation (arXiv 2509.02510), the paper's rule.

Keep the greedy prefix of tokens, sorted by probability, whose renormalised distribution
q stays within an entropy budget: H(q) <= alpha * H(p). With running sums over the sorted
probabilities, Gamma_j = sum p_i and h_j = sum p_i log p_i (i <= j), the entropy of the
first j tokens renormalised is H(q_j) = log Gamma_j - h_j / Gamma_j, so the whole batch is
one sort and two cumulative sums. The prefix ends at the first j that breaks the budget
(the paper's greedy stops there); the top token is always kept.

The authors' code implements a different, unnormalised rule (a partial-entropy budget
over the top 100); this module follows the paper. Entropies are in nats: the ratio to
H(p) makes the base irrelevant.
"""

from __future__ import annotations

import torch

DEFAULT_ALPHA = 0.4


def top_h_keep(logits: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(B, V) logits and (B,) alphas in (0, 1] -> (B, V) bool mask of tokens to keep."""
    work = logits.to(torch.promote_types(logits.dtype, torch.float32))  # at least fp32
    logp = torch.log_softmax(work, dim=-1)  # (B, V)
    p = logp.exp()
    plogp = torch.where(p > 0, p * logp, torch.zeros_like(p))
    h_p = -plogp.sum(dim=-1, keepdim=True)  # (B, 1)
    p_sorted, order = p.sort(dim=-1, descending=True)
    gamma = p_sorted.cumsum(dim=-1)  # (B, V)
    h = plogp.gather(-1, order).cumsum(dim=-1)
    h_q = gamma.clamp_min(1e-30).log() - h / gamma.clamp_min(1e-30)
    # A small tolerance: with one token kept H(q) is 0 up to rounding.
    ok = h_q <= alpha.unsqueeze(-1) * h_p + 1e-6
    ok[:, 0] = True
    keep_sorted = ok.int().cumprod(dim=-1).bool()  # the prefix up to the first violation
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def apply_top_h(logits: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Mask, in place, what top-H drops from each (B, V) row; returns `logits`."""
    return logits.masked_fill_(~top_h_keep(logits, alpha), float("-inf"))
