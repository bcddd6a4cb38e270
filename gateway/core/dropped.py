"""What a translation between two dialects leaves out, said in one debug line per request.

A translation maps what has an equivalent on the other side and drops what has none (a tool
that runs on the provider's servers, a field only one provider knows): the client is never
refused for sending valid input. ``Dropped`` collects the names as the translation meets them.
An inbound dialect hands them on in ``Call.dropped`` (the pipeline logs them once the call goes
to an upstream of another protocol); a provider adapter writes them with ``log()``, at debug
level (logger ``gateway.translate``).
"""

from __future__ import annotations

import logging

log = logging.getLogger("gateway.translate")
_MAX_NAMES = 40  # a request with hundreds of odd parts still makes one short line


class Dropped:
    __slots__ = ("names", "where")

    def __init__(self, where: str):
        self.where = where  # the translation: "responses->chat", "gemini->chat", "chat->gemini"
        self.names: list[str] = []

    def add(self, name: str) -> None:
        if name not in self.names and len(self.names) < _MAX_NAMES:
            self.names.append(name)

    def log(self) -> None:
        if self.names and log.isEnabledFor(logging.DEBUG):
            log.debug("%s: dropped what the target cannot take: %s", self.where, ", ".join(self.names))
