"""The ``collect`` sink: each access record appended to ``path`` as one JSON line.

A plugin sink is built like the gateway's own: a config model subclassing ``SinkConfigBase``
(``type``, ``name``, the queue and batch bounds, and its own fields), a sink (here a ``BatchSink``,
which queues, batches and retries, so it only writes ``deliver``) and a ``SinkType`` naming them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.observability.sinks.base import SinkContext, SinkType
from gateway.observability.sinks.batch import BatchSink
from gateway.observability.sinks.config import SinkConfigBase
from gateway.observability.sinks.record import AccessRecord


class CollectConfig(SinkConfigBase):
    """``{type: collect, path: logs/collected.jsonl}``."""

    type: Literal["collect"]
    path: str = Field(min_length=1)


class CollectSink(BatchSink):
    def __init__(self, config: CollectConfig):
        super().__init__(config)
        self.path = Path(config.path)

    async def deliver(self, batch: list[AccessRecord]) -> None:
        lines = "".join(json.dumps(record.fields(), default=str) + "\n" for record in batch)
        await asyncio.to_thread(self._append, lines)

    def _append(self, lines: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)


def build(config: CollectConfig, context: SinkContext) -> CollectSink:
    return CollectSink(config)


# The entry point ``collect`` in group ``gateway.sinks`` names this.
COLLECT = SinkType("collect", CollectConfig, build)
