"""What every guard's config has, for the built-in guards (``config.py``) and a plugin's guard
type (``registry.py``; its config model subclasses ``LocalGuardBase``)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from ..core.policy import Strict

GuardOn = Literal["input", "output", "both"]
GUARD_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class GuardBase(Strict):
    """What every guard has: a name other parts of the config select it by, and where it looks."""

    name: str = Field(pattern=GUARD_NAME)
    on: GuardOn

    @model_validator(mode="before")
    @classmethod
    def _on_as_written(cls, value: Any) -> Any:
        """YAML 1.1 (PyYAML) reads a bare ``on`` key as the boolean true: it is this field."""
        if isinstance(value, dict) and True in value and "on" not in value:
            return {("on" if key is True else key): v for key, v in value.items()}
        return value


class LocalGuardBase(GuardBase):
    """A guard the gateway runs itself (pii, secrets, regex, and a plugin's guard type, whose config
    model subclasses this one): it blocks, masks or only logs a match."""

    action: Literal["block", "mask", "log"]
    # mask only: the originals go back into the answer the client receives
    restore: bool = False

    @model_validator(mode="after")
    def _restore_needs_masked_input(self) -> Self:
        if self.restore and self.action != "mask":
            raise ValueError("restore: true needs action: mask (it puts back what was masked)")
        if self.restore and self.on == "output":
            raise ValueError("restore: true puts back what was masked in the request; with on: output nothing is")
        return self
