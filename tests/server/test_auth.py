import argparse

import httpx
import openai
import pytest

from tests.conftest import ENV_API_KEY, FILE_API_KEYS, MODEL
from thinkctl.errors import CommandError
from thinkctl.server.cli import _api_keys
from thinkctl.server.config import ServerConfig


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


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
        assert "wrong" not in err["message"]  # a sent key is never echoed


def test_the_sdk_sees_an_authentication_error(server):
    bad = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_keys_from_the_environment_and_a_file(deepseek_server):
    url = f"{deepseek_server.base_url}/v1/models"
    for key in (ENV_API_KEY, *FILE_API_KEYS):
        assert httpx.get(url, headers=bearer(key)).status_code == 200, key
    # The file's comment line, a prefix and an extension are not keys.
    for key in ("# one key per line", FILE_API_KEYS[0][:-1], FILE_API_KEYS[0] + "x"):
        assert httpx.get(url, headers=bearer(key)).status_code == 401, key
    # Nor is an empty one (httpx refuses to send "Bearer " with its trailing space).
    assert httpx.get(url, headers={"Authorization": "Bearer"}).status_code == 401


def test_keys_never_reach_the_log(deepseek_server):
    """The server logs at uvicorn's most verbose level (trace: every ASGI message), yet no
    key, accepted or refused, appears in its log."""
    wrong = "wrong-key-5d1c9e"
    url = deepseek_server.base_url
    body = {"model": MODEL, "messages": [{"role": "user", "content": "compute 1 ; A + 1"}],
            "max_tokens": 8}  # fmt: skip
    for key in (ENV_API_KEY, *FILE_API_KEYS, wrong):
        httpx.get(f"{url}/v1/models", headers=bearer(key))
        httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), json=body, timeout=60)
        httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), json={**body, "stream": True},
                   timeout=60)  # fmt: skip
        httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), json={"n": "x"})  # a 400
    log = deepseek_server.log.read_text(errors="replace")
    assert '"GET /v1/models HTTP/1.1" 401' in log and "ASGI" in log  # it did log these requests
    for key in (ENV_API_KEY, *FILE_API_KEYS, wrong):
        assert key not in log


def test_a_key_file_without_keys_is_refused(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("# the keys go here\n\n   \n")
    with pytest.raises(CommandError, match="holds no key"):  # not a server without auth
        _api_keys(argparse.Namespace(api_key=None, api_key_file=path))
    path.write_text("  a-key  \n  # a comment\n")
    assert _api_keys(argparse.Namespace(api_key="b-key", api_key_file=path)) == ("b-key", "a-key")


def test_the_config_repr_hides_the_keys():
    assert "s3cret" not in repr(ServerConfig(model_name="m", api_keys=("s3cret",)))
