"""Every provider's usage read into the one shape (cache and reasoning tokens as parts of the
prompt and completion counts), and what it costs."""

from __future__ import annotations

import pytest

from gateway.core.pricing import Pricing, cost_usd
from gateway.core.usage import Usage
from gateway.providers.anthropic.response import usage_of as anthropic_usage
from gateway.providers.gemini.response import usage_of as gemini_usage
from gateway.providers.openai.response import usage_from


def test_openai_chat_and_responses_usage_details():
    chat = usage_from({"usage": {"prompt_tokens": 100, "completion_tokens": 40,
                                 "prompt_tokens_details": {"cached_tokens": 64},
                                 "completion_tokens_details": {"reasoning_tokens": 10}}})
    assert chat == Usage(100, 40, cache_read_tokens=64, reasoning_tokens=10)
    responses = usage_from({"usage": {"input_tokens": 100, "output_tokens": 40,
                                      "input_tokens_details": {"cached_tokens": 32},
                                      "output_tokens_details": {"reasoning_tokens": 5}}})
    assert responses == Usage(100, 40, cache_read_tokens=32, reasoning_tokens=5)
    assert usage_from({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == Usage(3, 4)


def test_anthropic_input_tokens_leave_the_cache_out_so_the_prompt_adds_them():
    usage = anthropic_usage({"input_tokens": 10, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 300,
                             "output_tokens": 50})
    assert usage == Usage(510, 50, cache_read_tokens=300, cache_write_tokens=200)


def test_gemini_thoughts_are_output_and_cached_content_is_part_of_the_prompt():
    usage = gemini_usage({"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 30,
                          "thoughtsTokenCount": 20})
    assert usage == Usage(120, 50, cache_read_tokens=100, reasoning_tokens=20)


def test_cache_tokens_cost_their_own_price_or_the_input_price():
    usage = Usage(1000, 100, cache_read_tokens=600, cache_write_tokens=200)
    own = Pricing(input_token_cost=1.0, output_token_cost=4.0, cache_read_token_cost=0.1, cache_write_token_cost=1.25)
    assert cost_usd(own, usage) == pytest.approx((200 * 1.0 + 600 * 0.1 + 200 * 1.25 + 100 * 4.0) / 1000)
    plain = Pricing(input_token_cost=1.0, output_token_cost=4.0)
    assert cost_usd(plain, usage) == pytest.approx((1000 * 1.0 + 100 * 4.0) / 1000)
