"""Schemathesis against the server's own OpenAPI schema: every endpoint, valid and invalid
inputs (our extension fields included), no 5xx, no hang, errors always in OpenAI's shape."""

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import API_KEY, MODEL

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# examples per (operation, mode); operations without inputs run once.
EXAMPLES = {"/v1/chat/completions": 260}


def keep_it_short(body) -> None:
    """Generation cost, not coverage: valid requests ask for a handful of tokens."""
    if not isinstance(body, dict):
        return
    for key in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(key), int) and body[key] > 8:
            body[key] = 8
    if "max_tokens" not in body and "max_completion_tokens" not in body:
        body["max_tokens"] = 8
    if isinstance(body.get("n"), int) and body["n"] > 2:
        body["n"] = 2
    ctl = body.get("thinkctl")
    if isinstance(ctl, dict) and isinstance(ctl.get("min_thinking_tokens"), int):
        ctl["min_thinking_tokens"] = min(ctl["min_thinking_tokens"], 4)


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        err = response.json()["error"]
        assert isinstance(err["message"], str) and err["message"]
        assert isinstance(err["type"], str) and "param" in err


def test_fuzz_every_endpoint(server):
    spec = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    assert "thinkctl" in str(spec["components"]["schemas"]["ChatCompletionRequest"])
    schema = schemathesis.openapi.from_dict(spec)
    calls: dict[tuple, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        modes = [GenerationMode.POSITIVE]
        if op.method.upper() == "POST":  # the GET routes take no input to get wrong
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            run_cases(op, mode, server, calls)
    assert sum(calls.values()) >= 500, calls
    # The server is still healthy after all of it.
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200


def run_cases(op, mode, server, calls: dict) -> None:
    key = (op.method, op.path, mode.value)
    calls[key] = 0

    @settings(max_examples=EXAMPLES.get(op.path, 20), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=op.as_strategy(generation_mode=mode), ours=st.booleans())
    def run(case, ours):
        if ours and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = MODEL  # reach past the model check half the time
        keep_it_short(case.body)
        check(case.call(base_url=server.base_url, headers=AUTH, timeout=30))
        calls[key] += 1

    run()
