"""The testbed's catalogue preset, in effect on the real server (shared `server` fixture)."""

from tests.conftest import MODEL, problem_prompt

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
