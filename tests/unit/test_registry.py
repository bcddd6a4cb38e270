"""The provider type table: every type the schema accepts is in it, every served type's adapter
satisfies the ``ProviderAdapter`` Protocol, and the types without an adapter are refused clearly."""

from __future__ import annotations

import inspect

import pytest
from pydantic import ValidationError

from gateway.config.schema import GatewayConfig
from gateway.providers.base import ProviderAdapter, Relay
from gateway.providers.registry import TYPES, adapter_for, api_root

PROTOCOL_METHODS = ("build_request", "parse_response", "stream_relay", "error_message", "classify")


@pytest.mark.parametrize("name", sorted(TYPES))
def test_the_schema_accepts_every_type_of_the_table(name):
    extra = {"azure": {"api_version": "2024-10-21"}}.get(TYPES[name].protocol, {})
    config = GatewayConfig.model_validate({"llm_providers": [{"id": "p", "type": name, **extra}]})
    assert config.llm_providers[0].type == name


def test_the_schema_refuses_a_type_the_table_does_not_have():
    with pytest.raises(ValidationError) as caught:
        GatewayConfig.model_validate({"llm_providers": [{"id": "p", "type": "not-a-type"}]})
    assert all(repr(name) in str(caught.value) for name in TYPES)


def test_the_protocol_stays_small():
    members = [name for name, _ in inspect.getmembers(ProviderAdapter, inspect.isfunction) if not name.startswith("_")]
    assert sorted(members) == sorted(PROTOCOL_METHODS)


@pytest.mark.parametrize("name", sorted(t.name for t in TYPES.values() if t.adapter is not None))
def test_every_served_type_has_an_adapter_that_satisfies_the_protocol(name):
    kind = TYPES[name]
    adapter = adapter_for(kind.protocol)
    assert adapter is kind.adapter
    for method in PROTOCOL_METHODS:
        expected = inspect.signature(getattr(ProviderAdapter, method))
        actual = inspect.signature(getattr(type(adapter), method))
        assert list(actual.parameters) == list(expected.parameters), (name, method)
    from gateway.core.call import CHAT, Call
    relay = adapter.stream_relay(Call(CHAT, "/chat/completions", {}, "m", True))
    assert isinstance(relay.done, bool) and callable(relay.feed) and callable(relay.final_usage)
    _relay: Relay = relay  # mypy checks the structural type


def test_key_envs_and_roots():
    assert TYPES["openai"].key_envs == ("OPENAI_API_KEY",)
    assert TYPES["openai-compatible"].key_envs == ("OPENAI_COMPATIBLE_API_KEY",)
    assert TYPES["anthropic"].key_envs == ("ANTHROPIC_API_KEY", "CLAUDE_API_KEY")
    assert TYPES["gemini"].key_envs == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert api_root("openai", "https://api.openai.com/") == "https://api.openai.com/v1"
    assert api_root("groq", None) == "https://api.groq.com/openai/v1"
    assert api_root("anthropic", "https://proxy.test") == "https://proxy.test/v1"
    assert api_root("gemini", "https://g.test/v1beta") == "https://g.test/v1beta"
    assert api_root("azure", "https://res.openai.azure.com/") == "https://res.openai.azure.com"
    assert api_root("azure", None) is None and api_root("openai-compatible", None) is None
