"""The curl commands of the client-management and first-steps documents (COO-LLM's, in
``../shared/reference/``), run as pasted by the real ``curl`` through bash against the real
gateway: only the host (``http://localhost:2906``) and the admin key (``your-admin-key``) are
changed. The config is the first-steps document's ``api_keys`` section as written."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable

import pytest

from tests.conftest import Gateway
from tests.fake_upstream import FakeUpstream
from tests.integration.test_admin_api import audit_lines, wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

# --- client-management.md, verbatim -----------------------------------------------------------
CREATE = """curl -X POST http://localhost:2906/admin/v1/clients \\
  -H "Authorization: Bearer your-admin-key" \\
  -H "Content-Type: application/json" \\
  -d '{
    "client_id": "prod-app-001",
    "api_key": "sk-prod-app-key-123",
    "description": "Production mobile application",
    "allowed_providers": ["openai", "anthropic"]
  }'"""
LIST = """curl -H "Authorization: Bearer your-admin-key" \\
  http://localhost:2906/admin/v1/clients/list"""
UPDATE = """curl -X PUT http://localhost:2906/admin/v1/clients/prod-app-001 \\
  -H "Authorization: Bearer your-admin-key" \\
  -H "Content-Type: application/json" \\
  -d '{
    "description": "Updated production mobile app",
    "allowed_providers": ["openai", "anthropic", "gemini"]
  }'"""
DELETE = """curl -X DELETE http://localhost:2906/admin/v1/clients/prod-app-001 \\
  -H "Authorization: Bearer your-admin-key\""""
CLIENT_CHAT = """curl http://localhost:2906/v1/chat/completions \\
  -H "Authorization: Bearer sk-prod-app-key-123" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "gpt-4",
    "messages": [{"role": "user", "content": "Hello"}]
  }'"""
METRICS_24H = """curl -H "Authorization: Bearer your-admin-key" \\
  "http://localhost:2906/admin/v1/metrics/clients/prod-app-001?start=$(date -d '24 hours ago' +%s)&end=$(date +%s)\""""
STATS = """curl -H "Authorization: Bearer your-admin-key" \\
  "http://localhost:2906/admin/v1/stats?group_by=provider&client_key=prod-app-001\""""
DEBUG_EXISTS = """curl -H "Authorization: Bearer admin-key" \\
  http://localhost:2906/admin/v1/clients/debug-client"""
DEBUG_AUTH = """curl -H "Authorization: Bearer client-key" \\
  http://localhost:2906/v1/models"""
DEBUG_METRICS = """curl -H "Authorization: Bearer admin-key" \\
  "http://localhost:2906/admin/v1/metrics/clients/debug-client?start=$(date +%s)\""""

# --- first-steps.md, verbatim -----------------------------------------------------------------
FIRST_CHAT = """curl -X POST http://localhost:2906/api/v1/chat/completions \\
  -H "Authorization: Bearer client-key-1" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "openai-prod:gpt-4o",
    "messages": [{"role": "user", "content": "Hello!"}],
    "max_tokens": 100
  }'"""
HEALTH = """curl http://localhost:2906/health"""
ADMIN_METRICS = """curl -H "Authorization: Bearer admin-key" \\
  http://localhost:2906/admin/metrics"""


def docs_config(fake: FakeUpstream) -> str:
    """Providers named as the documents name them (on the fake upstream), and first-steps' clients."""
    return textwrap.dedent(f"""
    llm_providers:
      - id: "openai-prod"
        type: "openai-compatible"
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        model: "gpt-4o"
      - id: "openai"
        type: "openai-compatible"
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-two-222222"]
        model: "gpt-4"
    api_keys:
      - id: "client-001"
        key: "client-key-1"
        allowed_providers: ["openai-prod", "gemini"]
        limits:
          req_per_min: 100
          tokens_per_min: 50000
      - key: "admin-key"
        allowed_providers: ["*"]  # All providers
        admin: true
    """)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> Gateway:
    return start_gateway(docs_config(fake))


def curl(gw: Gateway, command: str, **keys: str) -> tuple[int, dict]:
    """Run a document's command with only the host and keys changed; (HTTP status, JSON answer)."""
    pasted = command.replace("http://localhost:2906", gw.base_url).replace("your-admin-key", "admin-key")
    for old, new in keys.items():
        pasted = pasted.replace(f"Bearer {old}", f"Bearer {new}")
    done = subprocess.run(["bash", "-c", pasted + " -s -w '\\n%{http_code}'"], capture_output=True, text=True,
                          timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_the_client_management_commands_work_as_pasted(gw: Gateway, fake: FakeUpstream) -> None:
    status, created = curl(gw, CREATE)
    assert status == 201, created
    assert created["client"]["client_id"] == "prod-app-001" and created["api_key"] == "sk-prod-app-key-123"
    assert created["client"]["allowed_providers"] == ["openai", "anthropic"]

    status, listed = curl(gw, LIST)
    assert status == 200 and "prod-app-001" in [c["client_id"] for c in listed["clients"]]

    status, answer = curl(gw, CLIENT_CHAT)
    assert status == 200 and answer["choices"][0]["message"]["content"], answer

    status, updated = curl(gw, UPDATE)
    assert status == 200 and updated["description"] == "Updated production mobile app"
    assert updated["allowed_providers"] == ["openai", "anthropic", "gemini"]

    wait_until(lambda: curl(gw, METRICS_24H)[1]["total_requests"] == 1, what="the request in the ledger")
    status, metrics = curl(gw, METRICS_24H)
    assert status == 200 and set(metrics) >= {"client_id", "total_requests", "total_tokens", "total_cost",
                                              "success_rate", "avg_latency", "last_request_time"}
    assert metrics["client_id"] == "prod-app-001" and metrics["success_rate"] == 1.0
    assert metrics["total_tokens"] > 0 and abs(metrics["last_request_time"] - time.time()) < 120

    status, stats = curl(gw, STATS)
    assert status == 200 and [(g["key"], g["requests"]) for g in stats["groups"]] == [("openai", 1)]
    assert stats["groups"][0]["cost"] >= 0

    status, deleted = curl(gw, DELETE)
    assert status == 200 and deleted == {"deleted": "prod-app-001"}
    status, refused = curl(gw, CLIENT_CHAT)
    assert status == 401 and refused["error"]["code"] == "invalid_api_key"
    assert [a["action"] for a in audit_lines(gw)] == ["client.create", "client.update", "client.delete"]
    assert "sk-prod-app-key-123" not in gw.logs()


def test_the_debug_commands_work_as_pasted(gw: Gateway) -> None:
    status, missing = curl(gw, DEBUG_EXISTS)
    assert status == 404 and missing["error"]["code"] == "not_found"
    made = subprocess.run(["curl", "-s", "-X", "POST", gw.base_url + "/admin/v1/clients", "-H",
                           "Authorization: Bearer admin-key", "-d", '{"client_id": "debug-client"}'],
                          capture_output=True, text=True, check=True, timeout=30)
    key = json.loads(made.stdout)["api_key"]
    status, found = curl(gw, DEBUG_EXISTS)
    assert status == 200 and found["client_id"] == "debug-client" and key not in json.dumps(found)
    status, models = curl(gw, DEBUG_AUTH, **{"client-key": key})
    assert status == 200 and models["data"]
    status, metrics = curl(gw, DEBUG_METRICS)
    assert status == 200 and metrics["total_requests"] == 0


def test_the_first_steps_commands_work_as_pasted(gw: Gateway) -> None:
    status, answer = curl(gw, FIRST_CHAT)
    assert status == 200 and answer["object"] == "chat.completion", answer
    assert curl(gw, HEALTH) == (200, {"status": "healthy"})
    wait_until(lambda: curl(gw, ADMIN_METRICS)[1]["total_requests"] == 1, what="the request in the ledger")
    status, summary = curl(gw, ADMIN_METRICS)
    assert status == 200 and summary["success_rate"] == 1.0
    assert list(summary["cost_by_provider"]) == ["openai-prod"]
    assert summary["active_clients"] == 1 and summary["active_providers"] == 1
