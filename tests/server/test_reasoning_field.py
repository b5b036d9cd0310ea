"""--reasoning-field reasoning_content, and the API key taken from THINKCTL_API_KEY."""

import openai
import pytest

from tests.conftest import ENV_API_KEY, MODEL, problem_prompt


def test_reasoning_content_field_and_key_from_the_environment(deepseek_server):
    base = f"{deepseek_server.base_url}/v1"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    client = openai.OpenAI(base_url=base, api_key=ENV_API_KEY, max_retries=0)
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": problem_prompt()}],
                  max_tokens=200, temperature=0)  # fmt: skip
    message = client.chat.completions.create(**kwargs).choices[0].message
    assert (
        message.model_extra["reasoning_content"].strip() and "reasoning" not in message.model_extra
    )
    deltas = [
        c.choices[0].delta
        for c in client.chat.completions.create(**kwargs, stream=True)
        if c.choices
    ]
    streamed = "".join(d.model_extra.get("reasoning_content") or "" for d in deltas)
    assert streamed == message.model_extra["reasoning_content"]
    assert not any("reasoning" in d.model_extra for d in deltas)
