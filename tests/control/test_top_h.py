import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkctl.control.top_h import apply_top_h, top_h_keep


def entropy(p: list[float]) -> float:
    z = sum(p)
    return -sum(x / z * math.log(x / z) for x in p if x > 0)


def reference_keep(logits: torch.Tensor, alpha: float) -> set[int]:
    """The paper's greedy (Algorithm 1), one token at a time."""
    p = logits.double().softmax(-1).tolist()
    order = sorted(range(len(p)), key=lambda i: -p[i])
    budget = alpha * entropy(p)
    kept = [order[0]]
    for i in order[1:]:
        if entropy([p[j] for j in [*kept, i]]) > budget + 1e-6:
            break
        kept.append(i)
    return set(kept)


logit_rows = st.lists(st.floats(-8, 8), min_size=2, max_size=40)


@settings(max_examples=300)
@given(logit_rows, st.floats(0.05, 1.0))
def test_matches_the_greedy_reference(row, alpha):
    logits = torch.tensor(row, dtype=torch.float64)  # no float32 rounding at the boundary
    keep = top_h_keep(logits[None], torch.tensor([alpha]))[0]
    ref = reference_keep(logits, alpha)
    got = set(torch.nonzero(keep).flatten().tolist())
    if got != ref:  # ties in probability may be ordered differently: compare the masses
        p = logits.double().softmax(-1)
        assert math.isclose(p[list(got)].sum(), p[list(ref)].sum(), rel_tol=1e-6)


@given(logit_rows, st.floats(0.05, 1.0))
def test_keeps_the_top_token_and_respects_the_budget(row, alpha):
    logits = torch.tensor(row)
    keep = top_h_keep(logits[None], torch.tensor([alpha]))[0]
    p = logits.double().softmax(-1)
    assert p[keep].max() >= p.max() - 1e-6  # a most likely token is kept (ties may pick either)
    assert entropy(p[keep].tolist()) <= alpha * entropy(p.tolist()) + 1e-5


def test_batched_rows_use_their_own_alpha_and_masking_is_in_place():
    logits = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1]] * 2))
    out = apply_top_h(logits, torch.tensor([1.0, 0.05]))
    assert out is logits
    assert torch.isfinite(out[0]).all()  # alpha = 1 keeps everything
    assert torch.isfinite(out[1]).sum() == 1  # a tight budget keeps the top token only
