"""Write the operator's .env safely: mode 600 from the first byte, atomic rename, secrets via stdin.

Standard library only (setup.sh runs it before the venv exists).

    python3 scripts/envfile.py new PATH PORT     # a new .env with a generated master key
    python3 scripts/envfile.py set PATH NAME     # set NAME to the value read from stdin
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from pathlib import Path

# the writer lives in the gateway (its admin API writes .env too); standard library only
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.control.envfile import set_value, write_private  # noqa: E402

# Each variable's name appears once, on its own assignment line (comments describe it without
# naming it): `grep NAME .env | cut -d= -f2` then reads its value, as operators' documents do.
NEW_TEMPLATE = """# LLM gateway: the operator's secrets and settings. Mode 600; never commit or share this file.
# Written by ./setup.sh on {now}. The running gateway re-reads it on change
# (except the host, port and worker count, which need ./stop.sh && ./start.sh).

# Master key: accepted as a Bearer key for everything, including admin endpoints.
GATEWAY_MASTER_KEY={key}

# Port the gateway listens on (server.listen in config/config.yaml reads it).
GATEWAY_PORT={port}

# Default budget of every client without one of its own, applied live:
# test ($1 a day, $10 a month) | prod ($50 a day, $1000 a month) | unlimited
BUDGET_PROFILE=unlimited

# Provider API keys: uncomment and fill in. Numbered siblings (_2, _3, ...) join the same key pool.
# OPENAI_API_KEY=
# OPENAI_API_KEY_2=
# AZURE_API_KEY=
# GROQ_API_KEY=
# MISTRAL_API_KEY=
# DEEPSEEK_API_KEY=
# TOGETHER_API_KEY=
# PERPLEXITY_API_KEY=
# XAI_API_KEY=
# OPENROUTER_API_KEY=

# ./virtual-key.sh stores the last client key it created here:
# VIRTUAL_KEY=
"""


def new_env(port: str) -> str:
    return NEW_TEMPLATE.format(now=time.strftime("%Y-%m-%d %H:%M:%S"), key="sk-" + secrets.token_urlsafe(32),
                               port=port)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "new":
        write_private(argv[1], new_env(argv[2]))
        return 0
    if len(argv) == 3 and argv[0] == "set" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", argv[2]):
        with open(argv[1], encoding="utf-8") as handle:
            text = handle.read()
        write_private(argv[1], set_value(text, argv[2], sys.stdin.read().strip()))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
