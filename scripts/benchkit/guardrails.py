"""``--guardrails``: what the built-in ``pii`` and ``secrets`` guards cost, measured in this process.

A micro-measurement of the guard stage's engine (no server, no sockets): for realistic 4 KB
prompts (prose, code, JSON tool output, text full of personal data and keys, accented text), the
CPU time of ``RequestGuard.scan_input`` on a chat body with both guards (pii masking, secrets
masking, so a match does not cut the scan short) minus the same call with no guards; and for a
4 KB answer streamed in small deltas, the CPU per streamed event of the output scanner. Each
figure is the lowest of several repeats (the least disturbed by the rest of the machine).

The target: both guards together add under 100 µs per 4 KB prompt. The last row (a text dense with
personal data and keys, 40 matches in 4 KB) is shown for scale, not held to it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from benchkit.common import REPO
from benchkit.system import cpu_busy_percent

TARGET_US = 100.0
SIZE = 4096
DELTA_CHARS = 4  # about one token per streamed event

_PROSE = (
    "The quarterly review covered 14 projects across 3 regions, and 2 of them slipped by about 6 weeks. "
    "Most of the delay came from supplier contracts signed in March 2023, which took longer to renew than "
    "anyone planned for. We expect the backlog to clear by the end of Q3, assuming the new team of 12 "
    "engineers ramps up as quickly as the last one did. Customer satisfaction rose to 87 percent, up from "
    "81 percent a year earlier, while support tickets fell by roughly a third. "
)
_CODE = (
    "Here is the handler after the refactor (Python 3.11, tested with pytest 8.2.0 on 2024-05-14):\n"
    "def handle(request: Request) -> Response:\n"
    "    settings = load_settings('/etc/app/settings.yaml')\n"
    "    for item in request.items[:50]:\n"
    "        log.info(f'{item.name}: {item.value} ({item.size} bytes)')\n"
    "    return Response(status=200, body={'version': '2.14.1', 'retries': 3, 'timeout_s': 30})\n"
    "The old one leaked a file handle per call; see https://example.org/issues/4821 for details.\n"
)
_JSON = (
    '{"order_id": "ORD-2024-000913", "created": "2024-06-01T10:22:31Z", "items": [{"sku": "A-1043", '
    '"qty": 2, "price": 19.99}, {"sku": "B-2210", "qty": 1, "price": 149.5}], "total": 189.48, '
    '"status": "shipped", "carrier": {"name": "DHL", "tracking": "JD014600006251863214"}}\n'
)
_PII = (
    "Please update the account of Jane Roe (jane.roe@example.com, +44 20 7946 0958) and send the refund "
    "to IBAN DE89 3704 0044 0532 0130 00. Her card 4111 1111 1111 1111 was charged twice from "
    "203.0.113.42; the integration key was sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5 and the backup "
    "contact is ops-team@example.org, (415) 555-2671. "
)
_ACCENTED = (
    "Le comité a validé le budget de 2024 : 1 250 000 € répartis sur 18 mois, dont 35 % pour l'équipe "
    "de Lyon. Die Übergabe an das Münchner Büro erfolgt am 15. März, spätestens jedoch Ende Q2. "
)
# name -> (the text repeated to 4 KB, a text put in the middle once)
PROMPTS: dict[str, tuple[str, str]] = {
    "prose": (_PROSE, ""), "code": (_CODE, ""), "json tool output": (_JSON, ""), "accented": (_ACCENTED, ""),
    "prose + 8 matches": (_PROSE, _PII), "dense: 40 matches": (_PII + _PROSE, ""),
}


def _fill(piece: str, once: str = "") -> str:
    half = (piece * (SIZE // len(piece) + 1))[:(SIZE - len(once)) // 2]
    return (half + once + (piece * (SIZE // len(piece) + 1)))[:SIZE]


def _best_us(fn: Callable[[], Any], loops: int, repeats: int) -> float:
    """CPU µs of one call of ``fn``, the lowest of ``repeats`` runs of ``loops`` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        best = min(best, (time.process_time() - t0) / loops * 1e6)
    return best


def _best_async_us(make: Callable[[], Coroutine[Any, Any, Any]], loops: int, repeats: int) -> float:
    """``_best_us`` for a coroutine: ``loops`` awaits inside one event loop run (no loop start per call)."""
    async def many() -> None:
        for _ in range(loops):
            await make()

    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        asyncio.run(many())
        best = min(best, (time.process_time() - t0) / loops * 1e6)
    return best


def _guards() -> tuple[Any, Any]:
    """Guards as a config would build them: pii and secrets, both masking, and none."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from gateway.config.loader import parse_config
    from gateway.config.snapshot import build_snapshot

    config = """
llm_providers:
  - {id: p, type: openai, base_url: "http://127.0.0.1:9/v1", models: [m],
     api_keys: [sk-bench-provider-key-0001-xyz, sk-bench-provider-key-0002-xyz, AIzaBenchProviderKey000000000000000000]}
guardrails:
  default: [pii, secrets]
  guards:
    - {name: pii, type: pii, on: both, action: mask, restore: true}
    - {name: secrets, type: secrets, on: both, action: mask}
"""
    guarded = build_snapshot(parse_config(config.encode(), "bench.yaml", {}), "bench.yaml").guardrails
    bare = build_snapshot(parse_config(config.split("guardrails:")[0].encode(), "bench.yaml", {}),
                          "bench.yaml").guardrails
    return guarded, bare


def measure(loops: int = 300, repeats: int = 9) -> dict[str, Any]:
    """The figures of the report (µs)."""
    guarded, bare = _guards()
    out: dict[str, Any] = {"prompts": {}, "stream": {}}
    for name, (piece, once) in PROMPTS.items():
        body = {"model": "m", "messages": [{"role": "system", "content": "You are terse."},
                                           {"role": "user", "content": _fill(piece, once)}]}

        async def scan(g: Any = guarded, b: dict[str, Any] = body) -> Any:
            return await g.for_request(None, None).scan_input("chat", b)

        async def unguarded(b: dict[str, Any] = body) -> Any:
            return await bare.for_request(None, None).scan_input("chat", b)

        with_guards = _best_async_us(scan, loops, repeats)
        without = _best_async_us(unguarded, loops, repeats)
        actions: int = sum(e.times for e in asyncio.run(scan()).events)
        out["prompts"][name] = {"guarded_us": with_guards, "unguarded_us": without,
                                "added_us": with_guards - without, "actions": actions}
    out["stream"] = _stream(guarded, max(10, loops // 20), repeats)
    return out


def _stream(guarded: Any, loops: int, repeats: int) -> dict[str, float]:
    """CPU µs per streamed event of the output scanner (a 4 KB answer in DELTA_CHARS deltas)."""
    result: dict[str, float] = {}
    for label, text in (("prose", _fill(_PROSE)), ("prose + 8 matches", _fill(_PROSE, _PII))):
        deltas = [text[i:i + DELTA_CHARS] for i in range(0, len(text), DELTA_CHARS)]

        async def run(d: list[str] = deltas) -> None:
            scanner = guarded.for_request(None, None).output_scanner()
            feed = scanner.feed
            for delta in d:
                feed(delta)
            await scanner.finish()

        result[label] = _best_async_us(run, loops, repeats) / len(deltas)
    return result


def render(figures: dict[str, Any], busy: float) -> str:
    lines = ["## Guardrails: pii + secrets (both masking), per 4 KB prompt", "",
             "`RequestGuard.scan_input` on a chat body (a system message and a 4 KB user message), CPU µs, "
             "the lowest of several runs; unguarded is the same call with no guards.", "",
             "| prompt | unguarded µs | guarded µs | added µs | actions |", "|---|---:|---:|---:|---:|"]
    for name, row in figures["prompts"].items():
        lines.append(f"| {name} | {row['unguarded_us']:.1f} | {row['guarded_us']:.1f} | {row['added_us']:.1f} | "
                     f"{row['actions']} |")
    lines += ["", f"Output scanner, a 4 KB answer in {DELTA_CHARS}-character deltas: "
              + ", ".join(f"{k} {v:.2f} µs per event" for k, v in figures["stream"].items())]
    lines.append(f"\nThis machine: sum(range(1000)) takes {figures['calibration_us']:.1f} µs; scale the figures by "
                 "it to compare two machines.")
    if busy > 20:
        lines.append(f"\nThe machine was {busy:.0f}% busy before the run: the figures are inflated by the load.")
    realistic = [row["added_us"] for name, row in figures["prompts"].items() if not name.startswith("dense")]
    worst = max(realistic)
    lines += ["", f"{'PASS' if worst < TARGET_US else 'FAIL'}: the worst realistic prompt adds {worst:.1f} µs "
              f"(target < {TARGET_US:.0f} µs per 4 KB; the dense row, 40 matches in 4 KB, is shown for scale)"]
    return "\n".join(lines)


def calibration_us() -> float:
    """CPU µs of ``sum(range(1000))`` here: a yardstick to compare the figures of two machines."""
    return _best_us(lambda: sum(range(1000)), 2000, 7)


def run_guardrails(json_path: Path | None = None) -> int:
    busy = cpu_busy_percent()
    figures = measure()
    figures["calibration_us"] = calibration_us()
    print(render(figures, busy), flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps({"busy_percent": busy, **figures}, indent=2))
    return 0
