"""The secrets detector: the key and token shapes, the gateway's own provider keys, and the look-alikes
it leaves alone."""

from __future__ import annotations

import pytest

from gateway.guardrails.base import TextView
from gateway.guardrails.config import SECRET_ENTITIES
from gateway.guardrails.secrets import ProviderKeys, SecretsDetector

OWN = "my-provider-secret-123"
DETECTOR = SecretsDetector(SECRET_ENTITIES, ProviderKeys([OWN, "short", "key with spaces 1234"]))
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7dQ2Fs+/=\nProc-Type: 4,ENCRYPTED\n"
       "-----END RSA PRIVATE KEY-----")


def found(text: str, detector: SecretsDetector = DETECTOR) -> list[tuple[str, str]]:
    return sorted((m.entity, text[m.start:m.end]) for m in detector.find(TextView(text), 0))


@pytest.mark.parametrize(("entity", "value"), [
    ("openai_key", "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5_x-Yz"),
    ("openai_key", "sk-" + "Ab3d" * 12),
    ("openai_key", "sk-svcacct-9aB8cD7eF6gH5iJ4kL3mN2oP"),
    ("anthropic_key", "sk-ant-api03-" + "xY7_" * 20 + "AA"),
    ("google_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "ASIAY34FZKBOKMUTVV7A"),
    ("github_token", "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8"),
    ("github_token", "gho_" + "Z" * 20 + "9" * 16),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("private_key", PEM),
    ("private_key", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"),
    ("provider_key", OWN),
    ("provider_key", "key with spaces 1234"),
])
def test_secrets(entity, value):
    assert found(f"here: {value} (keep it safe)") == [(entity, value)]


def test_keys_after_an_assignment_or_in_quotes():
    assert found('OPENAI_API_KEY="sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"') == [
        ("openai_key", "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5")]
    assert found("token=ghp_" + "a1B2c3D4e5" * 4) == [("github_token", "ghp_" + "a1B2c3D4e5" * 4)]


def test_an_aws_secret_needs_its_context():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(f"aws_secret_access_key = {secret}") == [("aws_secret_key", secret)]
    assert found(f"AKIAIOSFODNN7EXAMPLE {secret}") == [("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
                                                        ("aws_secret_key", secret)]
    assert found(f"the checksum is {secret}") == []
    assert found("secret: da39a3ee5e6b4b0d3255bfef95601890afd80709") == []  # a hex digest, one case


def test_an_unfinished_private_key_is_still_reported():
    text = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"
    assert found(text) == [("private_key", text)]


@pytest.mark.parametrize("text", [
    "sk-this-is-not-a-real-key-at-all",  # no digit after the prefix
    "use the task-1234567890abcdefghijABCD flag",  # "sk-" inside a word
    "AIzaShort", "AKIAiosfodnn7example", "ghp_short", "eyJhbGciOiJIUzI1NiJ9 alone",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    "a short provider key: short",
    "/usr/local/lib/python3.11/site-packages/gateway/guardrails/secrets.py",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
])
def test_not_secrets(text):
    assert found(text) == []


def test_a_provider_key_is_reported_as_one_whatever_its_shape():
    own = "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"
    detector = SecretsDetector(SECRET_ENTITIES, ProviderKeys([own]))
    assert found(f"key {own}", detector) == [("provider_key", own)]


def test_provider_keys_are_found_even_when_no_shape_is_chosen():
    detector = SecretsDetector([], ProviderKeys([OWN]))
    assert found(f"a {OWN} and sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5", detector) == [("provider_key", OWN)]


def test_only_the_chosen_shapes_are_reported():
    detector = SecretsDetector(["jwt"], ProviderKeys([]))
    assert found("AKIAIOSFODNN7EXAMPLE and sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5", detector) == []
