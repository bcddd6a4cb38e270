"""``python -m gateway import-litellm``: LiteLLM proxy configs, as LiteLLM's documentation shows them
(the proxy Quick Start, load balancing, the config reference's router settings; placeholders such
as ``<your-azure-endpoint>`` filled in as an operator would), become configs that
``check-config`` accepts; what has no equivalent is a warning; the output serves requests.

The examples keep the documentation's comments as they are, long lines included."""
# ruff: noqa: E501

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import ADMIN_HEADERS, REPO
from tests.fake_upstream import FakeUpstream

# docs.litellm.ai/docs/proxy/configs, "Quick Start"
QUICK_START = """
model_list:
  - model_name: gpt-4o ### RECEIVED MODEL NAME ###
    litellm_params: # all params accepted by litellm.completion() - https://docs.litellm.ai/docs/completion/input
      model: azure/gpt-4o-eu ### MODEL NAME sent to `litellm.completion()` ###
      api_base: https://my-endpoint-europe-berri-992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_EU" # does os.getenv("AZURE_API_KEY_EU")
      rpm: 6      # [OPTIONAL] Rate limit for this deployment: in requests per minute (rpm)
  - model_name: bedrock-claude-v1
    litellm_params:
      model: bedrock/anthropic.claude-instant-v1
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-ca
      api_base: https://my-endpoint-canada-berri992.openai.azure.com/
      api_key: "os.environ/AZURE_API_KEY_CA"
      rpm: 6
  - model_name: anthropic-claude
    litellm_params:
      model: bedrock/anthropic.claude-instant-v1
      ### [OPTIONAL] SET AWS REGION ###
      aws_region_name: us-east-1
  - model_name: vllm-models
    litellm_params:
      model: openai/facebook/opt-125m # the `openai/` prefix tells litellm it's openai compatible
      api_base: http://0.0.0.0:4000/v1
      api_key: none
      rpm: 1440
    model_info:
      version: 2

  # Use this if you want to make requests to `claude-3-haiku-20240307`,`claude-3-opus-20240229`,`claude-2.1` without defining them on the config.yaml
  # Default models
  # Works for ALL Providers and needs the default provider credentials in .env
  - model_name: "*"
    litellm_params:
      model: "*"

litellm_settings: # module level litellm settings - https://github.com/BerriAI/litellm/blob/main/litellm/__init__.py
  drop_params: True
  success_callback: ["langfuse"] # OPTIONAL - if you want to start sending LLM Logs to Langfuse. Make sure to set `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` in your env

general_settings:
  master_key: sk-1234 # [OPTIONAL] Only use this if you to require all calls to contain this key (Authorization: Bearer sk-1234)
  alerting: ["slack"] # [OPTIONAL] If you want Slack Alerts for Hanging LLM requests, Slow llm responses, Budget Alerts. Make sure to set `SLACK_WEBHOOK_URL` in your env
"""

# docs.litellm.ai/docs/proxy/load_balancing, "Quick Start - Load Balancing"
LOAD_BALANCING = """
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/my-deployment-eu
      api_base: https://my-endpoint-europe-berri-992.openai.azure.com/
      api_key: sk-literal-azure-key-000000
      rpm: 6      # Rate limit for this deployment: in requests per minute (rpm)
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-small-ca
      api_base: https://my-endpoint-canada-berri992.openai.azure.com/
      api_key: sk-literal-azure-key-000000
      rpm: 6
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: azure/gpt-turbo-large
      api_base: https://openai-france-1234.openai.azure.com/
      api_key: sk-literal-azure-key-000000
      rpm: 1440

router_settings:
  routing_strategy: simple-shuffle # Literal["simple-shuffle", "least-busy", "usage-based-routing","latency-based-routing"], default="simple-shuffle"
  model_group_alias: {"gpt-4": "gpt-3.5-turbo"} # all requests with `gpt-4` will be routed to models with `gpt-3.5-turbo`
  num_retries: 2
  timeout: 30                                  # 30 seconds
  redis_host: redis.internal                   # set this when using multiple litellm proxy deployments, load balancing state stored in redis
  redis_password: a-literal-redis-password
  redis_port: 1992
"""

# docs.litellm.ai/docs/proxy/config_settings (router_settings), with one OpenAI and one Anthropic deployment
ROUTER_REFERENCE = """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: azure/gpt-4
      api_base: https://your-endpoint.openai.azure.com/
      api_key: os.environ/AZURE_API_KEY
      api_version: "2024-02-01"
    model_info:
      mode: chat
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY
    tpm: 90000
    rpm: 900
  - model_name: claude-3-5-sonnet
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20240620
      api_key: os.environ/ANTHROPIC_API_KEY
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000015
litellm_settings:
  num_retries: 3
  request_timeout: 600
  fallbacks:
    - gpt-4: ["claude-3-5-sonnet"]
router_settings:
  routing_strategy: latency-based-routing
  routing_strategy_args:
    ttl: 60
  redis_host: localhost
  redis_port: 6379
  redis_password: os.environ/REDIS_PASSWORD
  num_retries: 3
  timeout: 30
  allowed_fails: 3
  cooldown_time: 60
"""


def run_import(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "litellm_config.yaml"
    source.write_text(textwrap.dedent(text))
    return subprocess.run([sys.executable, "-m", "gateway", "import-litellm", str(source)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def check_config(tmp_path: Path, config: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "config.yaml").write_text(config)
    (tmp_path / "check.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return subprocess.run([sys.executable, "-m", "gateway", "check-config", str(tmp_path / "config.yaml"),
                           "--env-file", str(tmp_path / "check.env")], capture_output=True, text=True, timeout=60)


def imported(tmp_path: Path, text: str, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The translated config (parsed) and the warnings; it must pass check-config with ``env``."""
    done = run_import(tmp_path, text)
    assert done.returncode == 0, done.stderr
    checked = check_config(tmp_path, done.stdout, env)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    return yaml.safe_load(done.stdout), done.stderr


def providers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in config["llm_providers"]}


def test_the_proxy_quick_start(tmp_path):
    config, warnings = imported(tmp_path, QUICK_START, {"AZURE_API_KEY_EU": "k1", "AZURE_API_KEY_CA": "k2",
                                                        "AZURE_API_VERSION": "2024-10-21",
                                                        "OPENAI_COMPATIBLE_FACEBOOK_OPT_125M_API_KEY": "none"})
    found = providers(config)
    assert set(found) == {"azure-gpt-4o-eu", "azure-gpt-4o-ca", "openai-compatible-facebook-opt-125m"}
    eu = found["azure-gpt-4o-eu"]
    assert eu == {"id": "azure-gpt-4o-eu", "type": "azure", "api_version": "${AZURE_API_VERSION}",
                  "base_url": "https://my-endpoint-europe-berri-992.openai.azure.com/",
                  "api_keys": ["${AZURE_API_KEY_EU}"], "models": ["gpt-4o-eu"], "limits": {"req_per_min": 6}}
    vllm = found["openai-compatible-facebook-opt-125m"]
    assert (vllm["type"], vllm["base_url"], vllm["models"]) == ("openai-compatible", "http://0.0.0.0:4000/v1",
                                                               ["facebook/opt-125m"])
    # two deployments of gpt-4o: one alias with the router's default strategy (simple-shuffle), weighted by rpm
    assert config["model_aliases"] == {
        "gpt-4o": {"strategy": "weighted", "targets": ["azure-gpt-4o-eu:gpt-4o-eu", "azure-gpt-4o-ca:gpt-4o-ca"],
                   "weights": [6, 6]},
        "vllm-models": "openai-compatible-facebook-opt-125m:facebook/opt-125m"}
    assert config["routing"] == {"strategy": "weighted"} and config["api_keys"] == []
    for words in ("model_list[1]: the provider of 'bedrock/anthropic.claude-instant-v1' has no equivalent",
                  "model_list[3]: the provider of 'bedrock/anthropic.claude-instant-v1'",
                  "model_list[4]: its api_key is written in the file: put it in .env as "
                  "OPENAI_COMPATIBLE_FACEBOOK_OPT_125M_API_KEY",
                  "model_list[4]: model_info version of 'vllm-models'",
                  "model_list[5]: the wildcard deployment '*'", "litellm_settings.drop_params",
                  "litellm_settings.success_callback", "general_settings.master_key", "general_settings.alerting"):
        assert f"warning: {words}" in warnings, warnings
    assert "sk-1234" not in warnings


def test_load_balancing_and_its_router_settings(tmp_path):
    config, warnings = imported(tmp_path, LOAD_BALANCING, {"AZURE_API_VERSION": "2024-10-21",
                                                           "AZURE_MY_DEPLOYMENT_EU_API_KEY": "k",
                                                           "AZURE_GPT_TURBO_SMALL_CA_API_KEY": "k",
                                                           "AZURE_GPT_TURBO_LARGE_API_KEY": "k",
                                                           "REDIS_PASSWORD": "p"})
    alias = config["model_aliases"]["gpt-3.5-turbo"]
    assert alias == {"strategy": "weighted", "weights": [6, 6, 1440],
                     "targets": ["azure-my-deployment-eu:my-deployment-eu",
                                 "azure-gpt-turbo-small-ca:gpt-turbo-small-ca",
                                 "azure-gpt-turbo-large:gpt-turbo-large"]}
    assert config["model_aliases"]["gpt-4"] == alias  # model_group_alias
    assert config["routing"] == {"strategy": "weighted", "max_attempts": 3}
    assert config["server"] == {"request_timeout_s": 30}
    assert config["storage"] == {"runtime": {"type": "redis",
                                             "addr": "redis://:${REDIS_PASSWORD}@redis.internal:1992"}}
    assert "sk-literal-azure-key-000000" not in yaml.safe_dump(config) + warnings
    assert "a-literal-redis-password" not in yaml.safe_dump(config) + warnings
    assert "warning: router_settings.redis_password: is written in the file: put it in .env as REDIS_PASSWORD" \
        in warnings
    assert warnings.count("its api_key is written in the file") == 3


def test_the_router_settings_reference(tmp_path):
    config, warnings = imported(tmp_path, ROUTER_REFERENCE, {"AZURE_API_KEY": "a", "OPENAI_API_KEY": "o",
                                                             "ANTHROPIC_API_KEY": "c", "REDIS_PASSWORD": "r"})
    assert config["routing"] == {"strategy": "latency", "max_attempts": 4, "cooldown_s": 60,
                                 "circuit_breaker_open_s": 60, "circuit_breaker_failures": 3}
    found = providers(config)
    assert found["openai-gpt-4"]["limits"] == {"req_per_min": 900, "tokens_per_min": 90000}
    assert found["azure-gpt-4"]["api_version"] == "2024-02-01"
    claude = found["anthropic-claude-3-5-sonnet-20240620"]
    assert claude["pricing"] == {"input_token_cost": 0.003, "output_token_cost": 0.015}  # per 1K tokens
    assert config["model_aliases"]["gpt-4"] == {"strategy": "latency",
                                                "targets": ["azure-gpt-4:gpt-4", "openai-gpt-4:gpt-4"]}
    for words in ("router_settings.routing_strategy_args: has no equivalent", "litellm_settings.fallbacks",
                  "model_list[0]: model_info mode of 'gpt-4'"):
        assert f"warning: {words}" in warnings, warnings


def test_the_translation_serves_requests(tmp_path, start_gateway, fake: FakeUpstream):
    litellm = f"""
    model_list:
      - model_name: my-gpt
        litellm_params:
          model: openai/fake-gpt-4o
          api_base: {fake.base_url}/v1
          api_key: os.environ/MY_UPSTREAM_KEY
    """
    done = run_import(tmp_path, litellm)
    assert done.returncode == 0, done.stderr
    config = done.stdout.replace("routing:", 'server: {listen: "127.0.0.1:2906"}\nrouting:', 1)
    gw = start_gateway(config, env={"MY_UPSTREAM_KEY": "sk-upstream-from-env-1234"})
    answer = httpx.post(gw.base_url + "/v1/chat/completions", headers=ADMIN_HEADERS, timeout=10,
                        json={"model": "my-gpt", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
    assert fake.requests[-1].api_key == "sk-upstream-from-env-1234"
    assert fake.requests[-1].json["model"] == "fake-gpt-4o"


def test_input_that_is_no_litellm_config_is_refused(tmp_path):
    for text, words in (("- a\n- b\n", "the top level is not a mapping"), ("model_list: {a: 1}\n", "not a list"),
                        ("model_list: [\n", "not YAML")):
        done = run_import(tmp_path, text)
        assert done.returncode == 2 and words in done.stderr and not done.stdout, done.stderr
    missing = subprocess.run([sys.executable, "-m", "gateway", "import-litellm", str(tmp_path / "none.yaml")],
                             cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2 and re.search(r"error: cannot read .*none\.yaml", missing.stderr)
