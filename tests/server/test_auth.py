import httpx
import openai
import pytest

from tests.conftest import MODEL


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-key"}]
)
def test_v1_routes_need_the_key(server, headers):
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions")]:
        r = httpx.request(method, f"{server.base_url}{path}", headers=headers, json={})
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error"
        assert "param" in err and err["message"]


def test_the_sdk_sees_an_authentication_error(server):
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
