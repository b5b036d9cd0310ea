"""The engine's logprobs in OpenAI's chat shape, by vLLM's rules (`vllm serve` answers
the same): one entry per completion token, thinking included, each with its
`top_logprobs` alternatives in vLLM's order; logprobs clamped at -9999."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thinkctl.engine.client import Logprobs

FLOOR = -9999.0


def _token(token_id: int, decoded: str | None, tokenizer: Any, as_ids: bool) -> str:
    if as_ids:
        return f"token_id:{token_id}"
    return decoded if decoded is not None else tokenizer.decode([token_id])


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8", errors="replace"))


def chat_logprobs(
    token_ids: Sequence[int],
    steps: Sequence[Logprobs],
    top: int,
    tokenizer: Any,
    as_ids: bool = False,
) -> list[dict[str, Any]]:
    """`choices[i].logprobs.content` entries for `token_ids`."""
    out = []
    for tok, step in zip(token_ids, steps, strict=True):
        sampled = next((e for e in step if e[0] == tok), None)
        if sampled is None:  # vLLM returns no logprob for such a token: text only
            text = _token(tok, None, tokenizer, as_ids)
            out.append({"token": text, "logprob": FLOOR, "bytes": _bytes(text), "top_logprobs": []})
            continue
        alternatives = []
        for tid, lp, decoded in step[:top]:
            text = _token(tid, decoded, tokenizer, as_ids)
            alternatives.append({"token": text, "logprob": max(lp, FLOOR), "bytes": _bytes(text)})
        decoded = sampled[2]
        out.append({
            "token": _token(tok, decoded, tokenizer, as_ids),
            "logprob": max(sampled[1], FLOOR),
            "bytes": None if decoded is None else _bytes(decoded),
            "top_logprobs": alternatives,
        })  # fmt: skip
    return out
