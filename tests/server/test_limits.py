"""Admission limits, caps and the per-request timeout, on a server started with tight ones."""

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MODEL, Server, problem_prompt, running_server

LIMITS = ["--max-concurrent-requests", "2", "--max-queued-requests", "1",
          "--max-n", "2", "--max-prompt-tokens", "60", "--max-completion-tokens", "450",
          "--request-timeout", "0.4"]  # fmt: skip
# ~450 tokens per choice: well over the 0.4 s limit on this machine.
LONG = {"model": MODEL, "messages": [{"role": "user", "content": problem_prompt()}],
        "max_tokens": 450, "n": 2, "thinkctl": {"min_thinking_tokens": 440}}  # fmt: skip


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory, "limits", LIMITS, {}) as s:
        yield s


def post(server: Server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60)


@pytest.mark.parametrize(
    "change, param",
    [({"n": 3}, "n"), ({"max_tokens": 451}, "max_tokens"),
     ({"messages": [{"role": "user", "content": "compute 1 ; " + "A + 1 ; " * 30}]}, "messages")],
)  # fmt: skip
def test_caps_are_400s_naming_the_field(limited, change, param):
    r = post(limited, {**LONG, "max_tokens": 4, "n": 1, **change})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == "limit_exceeded" and "at most" in err["message"]


def test_a_long_request_times_out_with_a_504_and_leaves_the_engine(limited):
    r = post(limited, LONG)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "request_timeout"


def test_a_stream_that_times_out_ends_with_an_error_event(limited):
    with httpx.stream("POST", f"{limited.base_url}/v1/chat/completions",
                      json={**LONG, "stream": True}, timeout=60) as r:  # fmt: skip
        assert r.status_code == 200
        lines = [x for x in r.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert '"request_timeout"' in lines[-2]
