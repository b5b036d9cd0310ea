"""calibrate reads the same model-folder facts and catalogue preset as serve, so a probe
is calibrated on the exit sequence it will be served with, and records it."""

from __future__ import annotations

import argparse

from tests.models.conventions import ConventionTokenizer
from thinkctl.calibration.cli import think_tokens
from thinkctl.models.preset import Preset
from thinkctl.models.schema import load
from thinkctl.probes.model_folder import Conventions, ThinkTokens

R1 = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # no thinkctl.json: the preset decides


def test_calibrate_closes_with_the_presets_exit_sequence_as_serve_does():
    catalog = load()
    entry = catalog.find(R1)
    tok = ConventionTokenizer(catalog.chat_format(entry))
    preset = Preset(entry, True)
    flags = argparse.Namespace(think_end=None, answer_inducer=None)
    calibrated = think_tokens(R1, flags, tok, preset)
    served = ThinkTokens.of(Conventions().over(preset.control_defaults()), tok)
    assert calibrated.close() == served.close()
    assert calibrated.conventions.answer_inducer != Conventions().answer_inducer  # the premise
