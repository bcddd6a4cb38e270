"""One JSON object a line, with secrets redacted on the way out.

Nothing in the gateway logs a key on purpose; the formatter still scrubs anything shaped like
one (``sk-…``, ``Bearer …``, ``api-key: …``) as a last line of defence.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

_SECRET = re.compile(
    r"(?i)((?:api[-_]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',]+"
    r"|(bearer\s+)[^\s\"',]+"
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{6,}"
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# every match of _SECRET contains one of these (case-folded): a string without any is left as it is,
# which skips the regex for nearly every value of an access line
_HINTS = ("key", "authorization", "bearer", "sk-", "rk-", "pk-")


def redact(text: str) -> str:
    lower = text.casefold()  # casefold: the same letters the regex's (?i) treats as equal
    if not any(hint in lower for hint in _HINTS):
        return text
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def _ts(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = _redact_value(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "info") -> None:
    # the JSON lines carry none of the caller's file and line, process or thread: not looking them
    # up saves a stack walk, a getpid() system call and a thread lookup per line (the access log
    # writes one a request)
    logging._srcfile = None  # documented in logging: skips the caller lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiohttp.access", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
