"""The guard stage's API: which guards a request passes, and what they make of its texts.

    guard = snapshot.guardrails.guard_for(alias, client, remote)      # once per request; None: no guard
    verdict = await guard.scan_input(call.operation, call.body)        # before anything goes upstream
    if verdict.blocked: ...                                            # a 400 guardrail_blocked
    body = verdict.body                                                # masked when verdict.changed
    answer = await guard.scan_output(call.operation, answer_body)      # a whole answer
    scanner = guard.output_scanner()                                   # a stream: feed(delta), finish()
    guard.events                                                       # for metrics, the ledger, the audit log

A request passes ``guardrails.default``, then its alias's guards, then its client's, each guard
once, in that order. Local guards (pii, secrets, regex) run first, in one pass per text; then
the guards that ask a service, in order, on the texts the local ones left (masked values never
reach a webhook). Masks share one table per request, so input and output number alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..core.targets import ClientSpec
from .body import BodyTexts, answer_texts, request_texts
from .events import Block, Direction, GuardEvent, merged
from .local import LocalPlan, LocalRule
from .masking import Masker, restore_text
from .remote import ModerationCheck, Remote, WebhookCheck
from .stream import StreamScanner

LOCAL_ONLY = Remote()  # for a request whose guards call no service

RemoteCheck = WebhookCheck | ModerationCheck
_MAX_SELECTIONS = 1024


@dataclass(frozen=True)
class CompiledGuard:
    """One configured guard, ready to run: a local rule or a remote check."""

    name: str
    on_input: bool
    on_output: bool
    local: LocalRule | None = None
    remote: RemoteCheck | None = None


@dataclass(frozen=True)
class Selection:
    """The guards of one (alias, client) combination, split by direction and kind."""

    names: tuple[str, ...]
    input_plan: LocalPlan | None
    output_plan: LocalPlan | None
    input_remote: tuple[RemoteCheck, ...]
    output_remote: tuple[RemoteCheck, ...]
    restore: bool  # an input guard masks with restore: true


def _select(guards: Sequence[CompiledGuard]) -> Selection:
    def plan(rules: list[LocalRule], direction: Direction) -> LocalPlan | None:
        return LocalPlan(tuple(rules), direction) if rules else None

    inputs = [g for g in guards if g.on_input]
    outputs = [g for g in guards if g.on_output]
    return Selection(
        names=tuple(g.name for g in guards),
        input_plan=plan([g.local for g in inputs if g.local is not None], "input"),
        output_plan=plan([g.local for g in outputs if g.local is not None], "output"),
        input_remote=tuple(g.remote for g in inputs if g.remote is not None),
        output_remote=tuple(g.remote for g in outputs if g.remote is not None),
        restore=any(g.local is not None and g.local.restore for g in inputs),
    )


class Guardrails:
    """A snapshot's guards (``build.py`` compiles them from the config) and who passes which."""

    def __init__(self, guards: Mapping[str, CompiledGuard] | None = None, default: tuple[str, ...] = (),
                 aliases: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.guards: Mapping[str, CompiledGuard] = MappingProxyType(dict(guards or {}))
        self.default = default
        self.aliases: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(aliases or {}))
        self._selections: dict[tuple[str | None, tuple[str, ...]], Selection] = {}

    def names_for(self, alias: str | None, client: ClientSpec | None) -> tuple[str, ...]:
        """The guards a request for ``alias`` (None: not an alias) by ``client`` passes, in order."""
        names = list(self.default)
        for name in (*self.aliases.get(alias or "", ()), *(client.guardrails if client is not None else ())):
            if name not in names and name in self.guards:
                names.append(name)
        return tuple(names)

    def selection(self, alias: str | None, client: ClientSpec | None) -> Selection:
        key = (alias if alias in self.aliases else None, client.guardrails if client is not None else ())
        found = self._selections.get(key)
        if found is None:
            if len(self._selections) >= _MAX_SELECTIONS:
                self._selections.clear()
            found = self._selections[key] = _select([self.guards[n] for n in self.names_for(alias, client)])
        return found

    def for_request(self, alias: str | None, client: ClientSpec | None, remote: Remote | None = None) -> RequestGuard:
        return RequestGuard(self.selection(alias, client), remote or Remote())

    def guard_for(self, alias: str | None, client: ClientSpec | None,
                  remote: Callable[[], Remote]) -> RequestGuard | None:
        """The guard of one request (or tool call) for ``alias`` by ``client``; None when no guard
        applies. ``remote`` is asked for the service calls only when a selected guard makes some."""
        if not self.guards:
            return None
        selection = self.selection(alias, client)
        if not selection.names:
            return None
        return RequestGuard(selection, remote() if selection.input_remote or selection.output_remote else LOCAL_ONLY)


@dataclass(frozen=True)
class Verdict:
    """A body after the guards: ``blocked``, or ``body`` (the same object unless ``changed``)."""

    body: dict[str, Any]
    blocked: Block | None = None
    changed: bool = False
    events: tuple[GuardEvent, ...] = ()


@dataclass(frozen=True)
class TextVerdict:
    texts: tuple[str, ...]
    blocked: Block | None = None
    events: tuple[GuardEvent, ...] = ()

    def changed(self, before: Sequence[str]) -> bool:
        return tuple(before) != self.texts


@dataclass
class RequestGuard:
    """One request's pass through its guards; holds its placeholders and what the guards did."""

    selection: Selection
    remote: Remote
    masker: Masker = field(default_factory=Masker)
    events: list[GuardEvent] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.selection.names)

    @property
    def guards_input(self) -> bool:
        return self.selection.input_plan is not None or bool(self.selection.input_remote)

    @property
    def guards_output(self) -> bool:
        """Whether answers need scanning: output guards, or placeholders to restore."""
        s = self.selection
        return s.output_plan is not None or bool(s.output_remote) or (s.restore and bool(self.masker.restores))

    async def scan_input(self, operation: str, body: dict[str, Any]) -> Verdict:
        """The request body (OpenAI shape) through the input guards."""
        return await self._scan_body(request_texts(operation, body) if self.guards_input else None, body, "input")

    async def scan_output(self, operation: str, answer: dict[str, Any]) -> Verdict:
        """A whole answer (OpenAI shape) through the output guards, placeholders restored."""
        return await self._scan_body(answer_texts(operation, answer) if self.guards_output else None, answer,
                                     "output")

    async def _scan_body(self, found: BodyTexts | None, body: dict[str, Any], direction: Direction) -> Verdict:
        if found is None or not found.texts:
            return Verdict(body)
        verdict = await self.check_texts(found.texts, direction)
        if verdict.blocked is not None:
            return Verdict(body, verdict.blocked, False, verdict.events)
        if not verdict.changed(found.texts):
            return Verdict(body, None, False, verdict.events)
        return Verdict(found.replaced(body, verdict.texts), None, True, verdict.events)

    async def check_texts(self, texts: Sequence[str], direction: Direction) -> TextVerdict:
        """Texts through the guards of ``direction`` (for a caller that extracts texts itself)."""
        s = self.selection
        plan, remotes = (s.input_plan, s.input_remote) if direction == "input" else (s.output_plan, s.output_remote)
        if direction == "input":
            self.masker.avoid(texts)
        out, blocked, events = await self._check(list(texts), plan, remotes, direction)
        self.events.extend(events)
        if blocked is not None:
            return TextVerdict(tuple(texts), blocked, events)
        if direction == "output" and self.masker.restores:
            out = [restore_text(t, self.masker.restores) for t in out]
        return TextVerdict(tuple(out), None, events)

    async def _check(self, texts: list[str], plan: LocalPlan | None, remotes: Sequence[RemoteCheck],
                     direction: Direction) -> tuple[list[str], Block | None, tuple[GuardEvent, ...]]:
        events: list[GuardEvent] = []
        if plan is not None:
            texts, blocked, found = plan.scan_texts(texts, self.masker)
            events += found
            if blocked is not None:
                return texts, blocked, tuple(events)
        for check in remotes:
            result = await check.check(texts, direction, self.remote)
            events += result.events
            if result.blocked is not None:
                return texts, result.blocked, tuple(events)
            if result.texts is not None:
                texts = list(result.texts)
        return texts, None, tuple(events)

    def output_scanner(self) -> StreamScanner:
        """A scanner for one streamed text (one per ``body.chunk_texts`` key)."""
        s = self.selection

        async def whole(text: str) -> tuple[str, Block | None, tuple[GuardEvent, ...]]:
            out, blocked, events = await self._check([text], s.output_plan, s.output_remote, "output")
            return out[0], blocked, events

        return StreamScanner(s.output_plan, self.masker, self.events.extend, restore=s.restore,
                             whole=whole if s.output_remote else None)

    def records(self) -> tuple[GuardEvent, ...]:
        """What the guards did to this request, same events added up: for the metrics, ledger and audit log."""
        return merged(self.events)
