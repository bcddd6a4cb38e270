"""``server.base_paths``: the /v1 routes served again under a client's old base URL, with the same
resources, error shapes and OpenAPI description; fixed at start (a reload that changes them says a
restart is needed and changes nothing)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
from openai import OpenAI

from tests.conftest import CLIENT_KEY, basic_config

LITELLM = "/api/litellm/v1"


def config(fake, base_paths: str = f'["{LITELLM}"]') -> str:
    listen = 'listen: "127.0.0.1:2906"'
    return basic_config(fake).replace(listen, f"{listen}\n  base_paths: {base_paths}")


def test_the_v1_routes_answer_under_a_base_path_as_under_v1(start_gateway, fake):
    gw = start_gateway(config(fake))
    client = OpenAI(base_url=gw.base_url + LITELLM, api_key=CLIENT_KEY)
    answer = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    assert "fast" in {m.id for m in client.models.list()}
    assert fake.requests[-1].path == "/v1/chat/completions"
    with gw.client() as http:
        # an error is written in the route's dialect: Anthropic's shape under <base>/messages
        bad = http.post(LITELLM + "/messages", json={"model": "fast"})
        assert bad.status_code == 400 and bad.json()["type"] == "error"
        assert http.post(LITELLM + "/chat/completions", json={"model": "nope", "messages": [{"role": "user",
                         "content": "x"}]}).json()["error"]["code"] == "model_not_found"
        # only the /v1 routes are mirrored
        assert http.get(LITELLM + "/clients/list").status_code == 404
    paths = httpx.get(gw.base_url + "/openapi.json").json()["paths"]
    assert {LITELLM + "/chat/completions", LITELLM + "/messages", LITELLM + "/files/{object_id}"} <= set(paths)
    assert LITELLM + "/health" not in paths


def test_without_base_paths_the_prefix_is_not_served(start_gateway, fake):
    gw = start_gateway(basic_config(fake))
    with gw.client() as http:
        assert http.get(LITELLM + "/models").status_code == 404
        assert http.get("/v1/models").status_code == 200


def test_a_reload_that_changes_base_paths_says_a_restart_is_needed(start_gateway, fake):
    gw = start_gateway(config(fake))
    version = gw.readiness()["config"]["version"]
    gw.write_config(config(fake, '["/openai/v1"]'))
    gw.wait_for_version_change(version)
    assert gw.readiness()["last_reload"]["restart_needed"] == ["server.base_paths"]
    assert "change only with a restart" in gw.logs()
    with gw.client() as http:  # the routes stay as the server started
        assert http.get(LITELLM + "/models").status_code == 200
        assert http.get("/openai/v1/models").status_code == 404


def test_bad_base_paths_are_config_errors(tmp_path):
    for value, words in (('["/v1"]', "served already"), ('["api/litellm/v1"]', "is not a base path"),
                         ('["/api/x/"]', "is not a base path"), ('["/admin/v2"]', "another endpoint"),
                         ('["/a", "/a"]', "listed twice")):
        path = tmp_path / "config.yaml"
        path.write_text(textwrap.dedent(f"""
        server:
          base_paths: {value}
        """))
        done = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path), "--env-file",
                               str(tmp_path / "none.env")], capture_output=True, text=True)
        assert done.returncode == 2, done.stdout
        assert f"{path}:3: server.base_paths: " in done.stderr and words in done.stderr, done.stderr
