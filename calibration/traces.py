"""Calibration traces: sampled with vLLM like the serving default, with the features of
every cue event recorded in the engine, and each event labelled by a forced exit.

Work is done in shards written to `WORK/shard-NNNN.safetensors` (+ `.json`); a shard
that exists is not redone, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from thinkctl.calibration.datasets import Dataset
from thinkctl.errors import CommandError
from thinkctl.probes.features import FeatureSpec
from thinkctl.probes.forced_exit import ForcedExit, answer_ids


@dataclass
class Events:
    """Cue events of many traces, as parallel arrays."""

    trace: np.ndarray  # (m,) index of the trace (global across shards)
    position: np.ndarray  # (m,) output position of the cue token
    label: np.ndarray  # (m,) 1: a forced exit here answers right; 0: wrong; -1: malformed
    features: np.ndarray  # (m, d) float32


@dataclass
class Traces:
    question: np.ndarray  # (t,) dataset index of each trace
    thinking_tokens: np.ndarray  # (t,) natural thinking length (delimiters excluded)
    correct: np.ndarray  # (t,) natural answer correct (1/0; malformed = 0)
    closed: np.ndarray  # (t,) thinking closed within the token limit
    events: Events
    # (t, layers x hidden) the prompt's last-token features: the length predictor's input
    prompt_features: np.ndarray | None = None
    # Forced exits every `exit_every` thinking tokens besides the cues (`features` empty):
    # where a budget cut between cues would answer, for replaying budgets.
    grid: Events | None = None
    # (t,) tokens of the answer after natural thinking, up to the model's own stop; -1
    # where thinking did not close or the answer was cut by the token limit (or unknown:
    # shards recorded before it was). What the answer reserve is sized from.
    answer_tokens: np.ndarray | None = None


def _label(ok: bool | None) -> int:
    return -1 if ok is None else int(ok)


def exit_label(data: Dataset, question: int, text: str, natural: str | None) -> int:
    """A forced exit's label from its answer `text`: 1 good, 0 bad, -1 unusable. With
    gold answers, whether it is correct (no answer read: unusable); label-free, whether
    it agrees with `natural`, the trace's own final answer (none: the trace is skipped;
    an exit with no readable answer changed the answer)."""
    if data.extract is None:
        return _label(data.check(question, text))
    assert data.agree is not None
    if natural is None:
        return -1
    got = data.extract(text)
    return int(got is not None and data.agree(got, natural))


class Generator:
    """An offline vLLM engine with the cue recorder installed (engine/offline.py)."""

    def __init__(self, model: str, spec: FeatureSpec, seed: int, engine_kwargs: dict) -> None:
        from thinkctl.engine.offline import OfflineEngine

        self.engine = OfflineEngine(model, seed, record_layers=spec.layers, **engine_kwargs)
        self.tok = self.engine.tokenizer
        self.spec = spec

    def prompt_ids(self, question: str | list[dict]) -> list[int]:
        messages = question if isinstance(question, list) else [
            {"role": "user", "content": question}]  # fmt: skip
        return self.tok.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False,
        )  # fmt: skip

    def shard(
        self,
        data: Dataset,
        questions: list[int],
        first_trace: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        close_ids: list[int],
        answer_tokens: int,
        exit_every: int = 0,
    ) -> Traces:
        from thinkctl.engine.recorder import PROMPT_POSITION, record_args

        prompts = [self.prompt_ids(data.questions[q]) for q in questions]
        spec = self.spec
        records = [
            record_args(str(first_trace + i), spec.cue_token_ids, spec.think_end_id,
                        spec.confidence)
            for i in range(len(questions))
        ]  # fmt: skip
        outs = self.engine.generate(prompts, max_tokens, temperature, top_p, records)
        records = self.engine.take_records()
        end = self.spec.think_end_id
        thinking, correct, closed, exits, feats, prompt_feats = [], [], [], [], [], []
        answer = []
        natural: list[str | None] = []  # label-free: each trace's own final answer
        for i, (q, prompt, out) in enumerate(zip(questions, prompts, outs, strict=True)):
            ids = out.ids
            closed.append(end in ids)
            thinking.append(ids.index(end) if end in ids else len(ids))
            answer.append(len(ids) - thinking[-1] - 1 if closed[-1] and out.finished else -1)
            reply = self.tok.decode(ids)
            if data.extract is not None:  # the reference is the trace itself: "correct"
                natural.append(data.extract(reply))  # where it has an answer at all
                correct.append(int(natural[-1] is not None))
            else:
                correct.append(int(bool(data.check(q, reply))))
            for pos, raw in sorted(records.get(str(first_trace + i), [])):
                if pos == PROMPT_POSITION:
                    prompt_feats.append(np.frombuffer(raw, dtype=np.float32))
                    continue
                # The online exit happens after the cue is emitted: keep it in the prefix.
                exits.append(ForcedExit(first_trace + i, pos, (*prompt, *ids[: pos + 1],
                                                                *close_ids)))  # fmt: skip
                feats.append(np.frombuffer(raw, dtype=np.float32))
        n_cues = len(exits)
        for i, (prompt, out) in enumerate(zip(prompts, outs, strict=True)):
            for pos in range(exit_every - 1, thinking[i] if exit_every else 0, exit_every or 1):
                exits.append(ForcedExit(first_trace + i, pos, (*prompt, *out.ids[: pos + 1],
                                                               *close_ids)))  # fmt: skip
        answers = self.engine.greedy_ids([e.prompt_ids for e in exits], answer_tokens)
        labels = []
        for e, a in zip(exits, answers, strict=True):
            q = questions[e.trace - first_trace]
            text = self.tok.decode(answer_ids(close_ids, a))
            ref = natural[e.trace - first_trace] if natural else None
            labels.append(exit_label(data, q, text, ref))
        dim = self.spec_dim()
        if len(prompt_feats) != len(questions):
            raise RuntimeError("the recorder missed a prompt's features")

        def events(part: slice, features: np.ndarray) -> Events:
            return Events(np.asarray([e.trace for e in exits[part]], dtype=np.int64),
                          np.asarray([e.position for e in exits[part]], dtype=np.int64),
                          np.asarray(labels[part], dtype=np.int64), features)  # fmt: skip

        return Traces(
            question=np.asarray(questions, dtype=np.int64),
            thinking_tokens=np.asarray(thinking, dtype=np.int64),
            correct=np.asarray(correct, dtype=np.int64),
            closed=np.asarray(closed, dtype=np.int64),
            events=events(
                slice(0, n_cues), np.stack(feats) if feats else np.zeros((0, dim), np.float32)
            ),
            prompt_features=np.stack(prompt_feats),
            grid=events(slice(n_cues, None), np.zeros((len(exits) - n_cues, 0), np.float32)),
            answer_tokens=np.asarray(answer, dtype=np.int64),
        )

    def spec_dim(self) -> int:
        return self.spec.dim(self.engine.hidden_size)


def save(traces: Traces, path: Path) -> None:
    from safetensors.numpy import save_file

    arrays = {
        "question": traces.question, "thinking_tokens": traces.thinking_tokens,
        "correct": traces.correct, "closed": traces.closed,
        "events.trace": traces.events.trace, "events.position": traces.events.position,
        "events.label": traces.events.label, "events.features": traces.events.features,
        "prompt_features": traces.prompt_features, "grid.trace": traces.grid.trace,
        "grid.position": traces.grid.position, "grid.label": traces.grid.label,
        "answer_tokens": traces.answer_tokens,
    }  # fmt: skip
    tmp = path.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp)
    tmp.rename(path)  # a shard is either complete or absent


def load(path: Path) -> Traces:
    from safetensors.numpy import load_file

    a = load_file(path)
    if "grid.trace" not in a:
        raise CommandError(f"{path} was recorded before prompts' features and grid exits were; "
                         "remove its folder to record anew")  # fmt: skip
    return Traces(
        a["question"], a["thinking_tokens"], a["correct"], a["closed"],
        Events(a["events.trace"], a["events.position"], a["events.label"],
               a["events.features"]),
        a["prompt_features"],
        Events(a["grid.trace"], a["grid.position"], a["grid.label"],
               np.zeros((len(a["grid.trace"]), 0), np.float32)),
        a.get("answer_tokens", np.full(len(a["question"]), -1, np.int64)),
    )  # fmt: skip


def concat(parts: list[Traces]) -> Traces:
    def cat(get):
        return np.concatenate([get(p) for p in parts])

    return Traces(
        cat(lambda p: p.question), cat(lambda p: p.thinking_tokens), cat(lambda p: p.correct),
        cat(lambda p: p.closed),
        Events(cat(lambda p: p.events.trace), cat(lambda p: p.events.position),
               cat(lambda p: p.events.label), cat(lambda p: p.events.features)),
        cat(lambda p: p.prompt_features),
        Events(cat(lambda p: p.grid.trace), cat(lambda p: p.grid.position),
               cat(lambda p: p.grid.label), cat(lambda p: p.grid.features)),
        cat(lambda p: p.answer_tokens),
    )  # fmt: skip


def generate(
    make_generator,
    data: Dataset,
    samples: int,
    work: Path,
    shard_size: int,
    **shard_kwargs,
) -> tuple[Traces, int]:
    """All traces (each question `samples` times), shard by shard, resuming finished ones.
    Also returns how many shards were reused from an earlier run."""
    work.mkdir(parents=True, exist_ok=True)
    order = [q for _ in range(samples) for q in range(len(data.questions))]
    n_shards = (len(order) + shard_size - 1) // shard_size
    parts, gen, reused = [], None, 0
    for s in tqdm(range(n_shards), desc="traces", unit="shard"):
        path = work / f"shard-{s:04d}.safetensors"
        if not path.exists():
            gen = gen or make_generator()
            qs = order[s * shard_size : (s + 1) * shard_size]
            save(gen.shard(data, qs, s * shard_size, **shard_kwargs), path)
        else:
            reused += 1
        parts.append(load(path))
    (work / "done.json").write_text(json.dumps({"shards": n_shards, "traces": len(order)}))
    return concat(parts), reused
