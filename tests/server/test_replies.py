"""The reply bodies (server/replies.py): in the OpenAPI schema, and errors never dressed
as a finished choice."""

from __future__ import annotations

import httpx
import pytest
from vllm.exceptions import GenerationError, RetryableRequestError

from thinkctl.engine.client import _classified
from thinkctl.errors import EngineError
from thinkctl.server.generation import _openai_finish


@pytest.mark.parametrize("reason, status", [("error", 500), ("abort", 503)])
def test_an_engine_error_or_abort_is_an_error_not_a_stop(reason, status):
    with pytest.raises(EngineError) as err:
        _openai_finish(reason)
    assert err.value.status == status
    assert (_openai_finish("stop"), _openai_finish("length")) == ("stop", "length")


@pytest.mark.parametrize("exc, status", [(RetryableRequestError(), 503), (GenerationError(), 500)])
def test_vllms_generation_errors_keep_vllms_status(exc, status):
    assert _classified(exc).status == status == _classified(exc).as_api_error().status


@pytest.mark.engine
def test_the_openapi_schema_draws_the_reply_and_its_control_trace(server):
    schema = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    names = set(schema["components"]["schemas"])
    assert {"ChatCompletion", "ControlTrace", "ControlEventOut", "Usage"} <= names
    post = schema["paths"]["/v1/chat/completions"]["post"]
    ref = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ChatCompletion")
