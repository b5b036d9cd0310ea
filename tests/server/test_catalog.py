"""The testbed's catalogue preset, in effect on the real server (shared `server` fixture)."""

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import MODEL, problem_prompt
from thinkctl.bench.server_process import start_server, stop_server
from thinkctl.models import embedded

ADAPTTHINK = "THU-KEG/AdaptThink-1.5B-delta0.05"

QUESTION = [{"role": "user", "content": problem_prompt(difficulty=7)}]


def test_models_card_shows_the_testbed_preset(client):
    preset = client.models.list().data[0].model_extra["thinkctl"]["preset"]
    assert preset["id"] == "testbed" and preset["mechanism"] == "none"
    assert preset["sampling"]["temperature"] == 0.6  # its card's evaluation temperature
    assert preset["instruction"] is None and preset["length_prompt"] is None


def test_a_request_without_temperature_samples_at_the_presets(client):
    """Same seeds: no temperature gives T = 0.6's tokens, not those of the server's own
    default (1.0). The testbed is peaked, so it takes many sampled slips (16 choices of the
    longest problems) before 0.6 and 1.0 part."""

    def tokens(**sampling) -> list[list[int]]:
        r = client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=300, n=16, seed=11,
            extra_body={"return_token_ids": True}, **sampling,
        )  # fmt: skip
        return [c.model_extra["token_ids"] for c in sorted(r.choices, key=lambda c: c.index)]

    preset = tokens()
    assert preset == tokens(temperature=0.6)
    assert preset != tokens(temperature=1.0), "these seeds cannot tell 0.6 from 1.0"


@pytest.fixture(scope="module")
def copy_client(tmp_path_factory) -> Iterator[openai.OpenAI]:
    """`serve --model FOLDER --preset ID`: a local copy served with a catalogue preset.

    The testbed's folder stands in for a downloaded AdaptThink: same think delimiters, so
    the preset's prefilled </think> is a real end of thinking for it."""
    log = tmp_path_factory.mktemp("copy") / "serve.log"
    args = ["--preset", ADAPTTHINK, "--served-model-name", "copy",
            "--no-probe",  # a downloaded copy carries no probe
            "--kv-cache-memory-bytes", str(1 << 30)]  # fmt: skip
    try:
        proc, url = start_server(str(embedded.testbed_folder()), log, args)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)
    stop_server(proc)


def test_a_local_copy_served_with_a_preset_uses_its_mechanism(copy_client):
    card = copy_client.models.list().data[0].model_extra["thinkctl"]
    assert card["preset"]["id"] == ADAPTTHINK and card["preset"]["mechanism"] == "prefill_end_think"

    def ask(**body):
        r = copy_client.chat.completions.create(model="copy", messages=QUESTION, **body)
        return r.choices[0]

    low = ask(reasoning_effort="low")  # NoThinking: the reply opens with </think>
    assert low.model_extra["thinkctl"]["exit_reason"] == "mode"
    assert low.model_extra["thinkctl"]["thinking_tokens"] == 0 and "\\boxed{" in low.message.content
    high = ask(reasoning_effort="high")  # the model's choice: the testbed always thinks
    assert high.model_extra["thinkctl"]["thinking_tokens"] > 0
    assert "mode" not in high.model_extra["thinkctl"]["controllers"]


def test_the_folders_own_answer_inducer_wins_over_the_presets(copy_client):
    r = copy_client.chat.completions.create(
        model="copy", messages=QUESTION, extra_body={"thinkctl": {"max_thinking_tokens": 5}}
    )
    content = r.choices[0].message.content
    assert r.choices[0].model_extra["thinkctl"]["exit_reason"] == "budget"
    assert content.strip().startswith("\\boxed{") and "Final Answer" not in content


def test_template_kwargs_reach_the_template_but_cannot_replace_it(client):
    ok = client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=4,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )  # fmt: skip
    assert ok.choices[0].finish_reason == "length"  # the testbed's template ignores it
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=4,
            extra_body={"chat_template_kwargs": {"chat_template": "{{ 'x' }}"}},
        )  # fmt: skip
    assert "chat_template_kwargs" in str(exc.value)
