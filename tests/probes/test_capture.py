"""The hidden-state capture on a toy decoder: the right rows in eager mode, and the same
rows when the hooks are traced into a compiled graph (as vLLM compiles its models)."""

import pytest
import torch

from thinkctl.probes.capture import StepCapture

D, BLOCKS, SLOTS = 8, 3, 4


class Block(torch.nn.Module):
    """Returns (hidden, residual) like vLLM's decoder layers (residual add fused later)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(D, D)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None):
        residual = hidden if residual is None else hidden + residual
        return torch.tanh(self.proj(residual)), residual


class Decoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(Block() for _ in range(BLOCKS))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        residual = None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        return hidden + residual


def reference(model: Decoder, x: torch.Tensor, k: int) -> torch.Tensor:
    """The residual stream after block k at every token, by running the blocks by hand."""
    hidden, residual = x, None
    for layer in model.layers[:k]:
        hidden, residual = layer(hidden, residual)
    return hidden + residual


def setup(layers=(1, 3)):
    torch.manual_seed(0)
    model = Decoder().eval()
    qsl = torch.zeros(SLOTS + 1, dtype=torch.int32)  # the runner's persistent buffer
    cap = StepCapture(model.layers, layers, qsl, SLOTS, D)
    return model, qsl, cap


def schedule(qsl: torch.Tensor, tokens_per_request: list[int]) -> None:
    """What the runner writes before a forward pass: cumulative token counts, in place;
    slots past the batch keep whatever an earlier step left there."""
    ends = torch.tensor(tokens_per_request).cumsum(0)
    qsl[1 : len(ends) + 1] = ends.to(qsl.dtype)


def check_rows(model, qsl, cap, x, tokens_per_request, layers=(1, 3)) -> None:
    last = torch.tensor(tokens_per_request).cumsum(0) - 1  # each request's latest token
    for i, token in enumerate(last.tolist()):
        want = torch.cat([reference(model, x, k)[token] for k in layers])
        assert torch.allclose(cap.row(i), want, atol=1e-5), (i, token)


@pytest.mark.parametrize("steps", [[[3, 1, 2]], [[5, 2, 1, 1], [1, 1], [1, 1, 1]]])
def test_rows_are_each_requests_latest_token_in_eager_mode(steps):
    model, qsl, cap = setup()
    with torch.no_grad():
        for per_request in steps:  # a prefill-heavy step, then smaller decode steps
            schedule(qsl, per_request)
            x = torch.randn(sum(per_request), D)
            model(x)
            check_rows(model, qsl, cap, x, per_request)


def test_the_hooks_run_inside_a_compiled_graph_with_changing_batches():
    """Hooks registered before compilation are traced into the graph: one compile, then
    batches of other sizes and layouts still land in the right rows (nothing in the hook
    is specialised on the first batch)."""
    torch._dynamo.reset()
    model, qsl, cap = setup()
    compiled = torch.compile(model, backend="aot_eager", dynamic=True, fullgraph=True)
    with torch.no_grad():
        for per_request in ([4, 3], [1, 1, 1, 1], [2, 5, 1], [1, 2]):
            schedule(qsl, per_request)
            x = torch.randn(sum(per_request), D)
            cap.reset()
            compiled(x)
            assert cap.written()
            check_rows(model, qsl, cap, x, per_request)


def test_a_batch_with_fewer_tokens_than_slots_reads_only_valid_rows():
    """Stale offsets past the batch would index past the step's tokens: they are clamped."""
    model, qsl, cap = setup()
    qsl[:] = torch.tensor([0, 90, 91, 92, 93], dtype=qsl.dtype)  # left by an earlier step
    with torch.no_grad():
        schedule(qsl, [1, 1])
        x = torch.randn(2, D)
        model(x)
    check_rows(model, qsl, cap, x, [1, 1])


def test_reset_and_written():
    model, qsl, cap = setup()
    assert not cap.written()
    schedule(qsl, [2])
    with torch.no_grad():
        model(torch.randn(2, D))
    assert cap.written()
    cap.reset()
    assert not cap.written()


def test_a_layer_outside_the_model_is_refused():
    model = Decoder()
    with pytest.raises(ValueError, match="outside"):
        StepCapture(model.layers, [BLOCKS + 1], torch.zeros(SLOTS + 1), SLOTS, D)
