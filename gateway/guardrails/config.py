"""``guardrails:`` in config.yaml, as pydantic models (the config schema embeds ``GuardrailsConfig``).

    guardrails:
      default: [no-secrets]            # applied to every request
      guards:
        - {name: no-secrets, type: secrets, on: both, action: block}
        - {name: pii, type: pii, on: input, action: mask, restore: true, entities: [email, phone]}

Structure is checked here (types, values, patterns that compile and cannot backtrack
exponentially); names that point elsewhere (``default``, an alias's or a client's
``guardrails``, a moderation guard's ``provider``) are checked when the snapshot is built
(``build.py``), each with its file:line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Discriminator,
    Field,
    SerializeAsAny,
    Tag,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..core.policy import Strict
from ..plugins.loader import GUARDRAILS
from ..plugins.typed_items import TypedItems
from .guard_base import GuardBase, LocalGuardBase
from .patterns import PatternProblem, check_pattern
from .registry import PLUGIN_TYPES

PiiEntity = Literal["email", "phone", "card", "iban", "ip"]
SecretEntity = Literal["openai_key", "anthropic_key", "google_key", "aws_access_key", "aws_secret_key",
                       "github_token", "jwt", "private_key"]
PII_ENTITIES: tuple[PiiEntity, ...] = ("email", "phone", "card", "iban", "ip")
SECRET_ENTITIES: tuple[SecretEntity, ...] = ("openai_key", "anthropic_key", "google_key", "aws_access_key",
                                             "aws_secret_key", "github_token", "jwt", "private_key")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} '{value}' is listed twice")
        seen.add(value)
    return values


class PiiGuard(LocalGuardBase):
    type: Literal["pii"]
    entities: list[PiiEntity] = Field(default_factory=lambda: list(PII_ENTITIES), min_length=1)

    @field_validator("entities")
    @classmethod
    def _entities(cls, v: list[str]) -> list[str]:
        return _unique(v, "entity")


class SecretsGuard(LocalGuardBase):
    """Key and token shapes; the gateway's own provider keys are always among them."""

    type: Literal["secrets"]
    entities: list[SecretEntity] = Field(default_factory=lambda: list(SECRET_ENTITIES))

    @field_validator("entities")
    @classmethod
    def _entities(cls, v: list[str]) -> list[str]:
        return _unique(v, "entity")


class RegexPattern(Strict):
    """One operator pattern; ``name`` is the entity it reports and its placeholder (``<ORDER_ID_1>``)."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    pattern: str = Field(min_length=1, max_length=2000)
    ignore_case: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        try:
            check_pattern(self.pattern, self.ignore_case)
        except PatternProblem as exc:
            raise PydanticCustomError("pattern_problem", "pattern {problem}", {"problem": str(exc)}) from None
        return self


class RegexGuard(LocalGuardBase):
    type: Literal["regex"]
    patterns: list[RegexPattern] = Field(min_length=1, max_length=64)
    # the longest match looked for across the chunks of a stream (and the overlap of scan windows)
    max_match_chars: int = Field(256, ge=1, le=4096)

    @field_validator("patterns")
    @classmethod
    def _names(cls, v: list[RegexPattern]) -> list[RegexPattern]:
        _unique([p.name for p in v], "pattern name")
        return v


class _RemoteGuard(GuardBase):
    """A guard that asks a service: its answer blocks (``action: block``) or is only logged (``log``)."""

    action: Literal["block", "log"]
    timeout_s: float = Field(5.0, gt=0, le=120)
    on_error: Literal["allow", "block"] = "block"  # no answer in time, an error status, an unreadable answer


class ModerationGuard(_RemoteGuard):
    """A configured provider's moderations model; blocks when one of ``categories`` is flagged (any
    category when the list is empty), or scores at least ``threshold`` when one is given."""

    type: Literal["moderation"]
    provider: str = Field(min_length=1)
    model: str = Field("omni-moderation-latest", min_length=1)
    categories: list[str] = []
    threshold: float | None = Field(None, gt=0, le=1)

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        return _unique(v, "category")


class WebhookGuard(_RemoteGuard):
    """The texts are POSTed to ``url``; the answer allows, blocks or replaces them (docs/guardrails.md)."""

    type: Literal["webhook"]
    url: str
    # ${VAR} from the environment or .env, like every value of the file; may hold a token: never in a repr
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout_s: float = Field(2.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"'{name[:64]}' is not an HTTP header name")
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError(f"the value of header '{name}' holds a line break")  # never the value itself
        return v


_ITEMS = TypedItems("guard", GUARDRAILS, {"pii": "PiiGuard", "secrets": "SecretsGuard", "regex": "RegexGuard",
                                          "moderation": "ModerationGuard", "webhook": "WebhookGuard"},
                    lambda: {name: kind.config for name, kind in PLUGIN_TYPES.items()})
GUARD_TAGS = _ITEMS.tags  # what pydantic puts in an error's location to name the union member

GuardConfig = Annotated[
    Annotated[PiiGuard, Tag("PiiGuard")]
    | Annotated[SecretsGuard, Tag("SecretsGuard")]
    | Annotated[RegexGuard, Tag("RegexGuard")]
    | Annotated[ModerationGuard, Tag("ModerationGuard")]
    | Annotated[WebhookGuard, Tag("WebhookGuard")]
    | Annotated[SerializeAsAny[LocalGuardBase], WrapValidator(_ITEMS.by_plugin_model), Tag(_ITEMS.plugin_tag)]
    | Annotated[LocalGuardBase, WrapValidator(_ITEMS.unknown), Tag(_ITEMS.unknown_tag)],
    Discriminator(_ITEMS.tag),
]
BuiltInGuard = PiiGuard | SecretsGuard | RegexGuard | ModerationGuard | WebhookGuard


class GuardrailsConfig(Strict):
    """``guardrails:``: the named guards, and the ones every request passes (``default``)."""

    guards: list[GuardConfig] = []
    default: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise PydanticCustomError("guardrails_shape", "guardrails is a mapping: {guards: [...], default: [...]} "
                                      "(the named guards under 'guards')")
        return value

    @field_validator("default")
    @classmethod
    def _default(cls, v: list[str]) -> list[str]:
        return _unique(v, "guardrail")
