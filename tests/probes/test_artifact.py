"""Probe artifacts: safetensors + JSON round trip; corrupt or foreign files are refused."""

import json

import numpy as np
import pytest

from thinkctl.probes import probe as P
from thinkctl.probes.artifact import (
    FORMAT,
    META_FILE,
    TENSOR_FILE,
    ProbeArtifact,
    ProbeError,
    ProbeMeta,
)
from thinkctl.probes.conformal import Calibration
from thinkctl.probes.features import FeatureSpec, ModelFacts

FACTS = ModelFacts(hidden_size=4, num_layers=3, vocab_size=50, tokenizer_sha256="a" * 64)


def make(tmp_path, confidence: bool = False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8 + confidence))
    y = (x[:, 0] > 0).astype(int)
    probe = P.export(P.fit(x, y, "logreg"))
    cal = Calibration.from_probs(probe.prob(x), y)
    meta = ProbeMeta(
        format=FORMAT, model=FACTS,
        features=FeatureSpec(layers=(2, 3), cue_words=("wait",), cue_token_ids=(7,),
                             think_end_id=9, confidence=confidence),
        kind="logreg", default_delta=0.1, tensors_sha256="0" * 64,
    )  # fmt: skip
    ProbeArtifact(meta, probe, cal).save(tmp_path)
    return x, probe, cal


def test_round_trip(tmp_path):
    x, probe, cal = make(tmp_path)
    loaded = ProbeArtifact.load(tmp_path)
    assert np.allclose(loaded.probe.prob(x), probe.prob(x), atol=1e-5)
    assert loaded.calibration.thresholds(0.1) == cal.thresholds(0.1)
    loaded.check_model(FACTS)
    assert not any(p.suffix == ".pkl" for p in tmp_path.iterdir())


def test_the_confidence_input_is_one_more_feature_and_optional_in_older_files(tmp_path):
    make(tmp_path, confidence=True)
    loaded = ProbeArtifact.load(tmp_path)
    assert loaded.meta.features.confidence and loaded.probe.dim == 2 * 4 + 1
    make(tmp_path)  # a probe on the hidden state alone, its JSON without the field
    raw = json.loads((tmp_path / META_FILE).read_text())
    del raw["features"]["confidence"]
    (tmp_path / META_FILE).write_text(json.dumps(raw))
    assert ProbeArtifact.load(tmp_path).meta.features.confidence is False


def test_a_spec_that_disagrees_with_the_weights_is_refused(tmp_path):
    make(tmp_path)
    raw = json.loads((tmp_path / META_FILE).read_text())
    raw["features"]["confidence"] = True  # 9 inputs claimed, 8 in the weights
    (tmp_path / META_FILE).write_text(json.dumps(raw))
    with pytest.raises(ProbeError, match="weight shapes"):
        ProbeArtifact.load(tmp_path)


def test_corrupt_tensor_file_is_refused(tmp_path):
    make(tmp_path)
    raw = bytearray((tmp_path / TENSOR_FILE).read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / TENSOR_FILE).write_bytes(bytes(raw))
    with pytest.raises(ProbeError, match="checksum"):
        ProbeArtifact.load(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [("{not json", "not valid JSON"), ('{"format": "other/1"}', "format"),
     (json.dumps({"format": FORMAT}), "invalid")],
)  # fmt: skip
def test_bad_meta_is_refused(tmp_path, text, message):
    make(tmp_path)
    (tmp_path / META_FILE).write_text(text)
    with pytest.raises(ProbeError, match=message):
        ProbeArtifact.load(tmp_path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ProbeError, match="missing probe.json"):
        ProbeArtifact.load(tmp_path)


@pytest.mark.parametrize(
    "change, message",
    [({"hidden_size": 8}, "hidden_size 4 != 8"), ({"num_layers": 2}, "layers \\[3\\] outside"),
     ({"tokenizer_sha256": "b" * 64}, "tokenizer")],
)  # fmt: skip
def test_probe_for_another_model_is_refused(tmp_path, change, message):
    make(tmp_path)
    other = FACTS.model_copy(update=change)
    with pytest.raises(ProbeError, match=message):
        ProbeArtifact.load(tmp_path).check_model(other)
