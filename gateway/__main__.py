"""Command line: ``python -m gateway serve | check-config | listen | add-client | hash-password |
import-litellm | plugins``."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from .config.loader import ConfigError
from .config.snapshot import Snapshot, load_snapshot
from .plugins.install import install as install_plugins
from .settings import Settings, load_settings


def resolve_listen(settings: Settings, snapshot: Snapshot) -> tuple[str, int]:
    host, _, port = snapshot.server.listen.rpartition(":")
    host = settings.host or host.strip("[]") or "0.0.0.0"
    return host, settings.port or int(port)


def port_in_use(host: str, port: int) -> bool:
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    family = socket.AF_INET6 if ":" in probe else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        if s.connect_ex((probe, port)) == 0:
            return True
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            s.bind((host if host not in ("",) else "0.0.0.0", port))
        except OSError:
            return True
    return False


def _load_or_exit(settings: Settings) -> Snapshot:
    try:
        return load_snapshot(settings.config, settings.env_file)
    except ConfigError as exc:
        print(f"config error(s) in {exc.filename}:", file=sys.stderr)
        print(exc.render(), file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.file:
        settings.config = Path(args.file)
    if args.env_file:
        settings.env_file = Path(args.env_file)
    snapshot = _load_or_exit(settings)
    for plugin in install_plugins():
        if not plugin.loaded:
            print(f"warning: {plugin.problem()}")
    for warning in snapshot.warnings:
        print(f"warning: {warning}")
    print(f"ok: {settings.config} (version {snapshot.version}): {len(snapshot.providers)} provider(s), "
          f"{len(snapshot.aliases)} alias(es), {len(snapshot.clients)} client(s)")
    return 0


def cmd_listen(args: argparse.Namespace) -> int:
    settings = load_settings()
    host, port = resolve_listen(settings, _load_or_exit(settings))
    print(host, port)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    snapshot = _load_or_exit(settings)
    host, port = resolve_listen(settings, snapshot)
    workers = args.workers or settings.workers
    if port_in_use(host, port):
        print(f"error: port {port} on {host} is already in use; stop what runs there or pick another "
              "port (GATEWAY_PORT in .env)", file=sys.stderr)
        return 3
    problem = _storage_problem(settings, workers)  # the stores open, or one clear line and exit 4
    if problem is not None:
        print(problem, file=sys.stderr)
        return 4
    if workers > 1:
        os.environ["GATEWAY_WORKERS"] = str(workers)  # each worker knows it shares the store
        metrics_dir = Path(settings.data_dir) / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    if workers == 1 and settings.embedded:
        from .server.embedded import run

        run(host, port, settings.log_level.lower())
        return 0
    loop = "uvloop" if _has("uvloop") else "asyncio"
    argv = ["granian", "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
            "--workers", str(workers), "--loop", loop, "--no-ws", "--log-level", settings.log_level.lower(),
            "--workers-kill-timeout", "30", "gateway.app:create_app"]
    sys.stdout.flush()
    # this interpreter's own Granian, whatever else is on PATH; the PID stays the same
    os.execv(sys.executable, [sys.executable, "-m", "granian"] + argv[1:])


def _storage_problem(settings: Settings, workers: int) -> str | None:
    from .config.loader import load_config
    from .store.preflight import storage_problem, workers_note

    storage = load_config(settings.config, settings.env_file).config.storage
    problem = storage_problem(storage, Path(settings.data_dir), workers)
    if problem is None and workers > 1:
        print(workers_note(storage, workers), file=sys.stderr)
    return problem


def cmd_add_client(args: argparse.Namespace) -> int:
    from .control.clients import add_client

    settings = load_settings()
    key = add_client(settings, client_id=args.id, providers=args.providers, rpm=args.rpm, tpm=args.tpm,
                     admin=args.admin)
    print(key)
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    """A PBKDF2 value for ``UI_PASSWORD`` (asked without echo on a terminal, else one line of stdin)."""
    import getpass

    from .api.ui.session import hash_password

    password = getpass.getpass("Dashboard password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("error: an empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_import_litellm(args: argparse.Namespace) -> int:
    """A LiteLLM proxy config as this gateway's config.yaml on stdout; what has no equivalent on stderr."""
    from .config.litellm_import import ImportProblem, import_text

    try:
        source = Path(args.file).read_text(encoding="utf-8")
        text, warnings = import_text(source, args.file)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except ImportProblem as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """What is installed: one line per entry point (name, group, package, version, whether it loaded);
    exit status 1 when one did not."""
    found = install_plugins()
    if not found:
        print("no plugins installed (entry point groups gateway.providers, gateway.guardrails, gateway.sinks, "
              "gateway.stores)")
        return 0
    rows = [("NAME", "GROUP", "PACKAGE", "VERSION", "LOADED")]
    rows += [(p.name, p.group, p.package or "-", p.version or "-", "yes" if p.loaded else f"no: {p.error}")
             for p in found]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    return 0 if all(p.loaded for p in found) else 1


def _has(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description="OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway under Granian (replaces this process)")
    serve.add_argument("--workers", type=int, default=0)
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a config file and print what is wrong")
    check.add_argument("file", nargs="?")
    check.add_argument("--env-file")
    check.set_defaults(func=cmd_check_config)
    listen = sub.add_parser("listen", help="print the host and port the gateway will listen on")
    listen.set_defaults(func=cmd_listen)
    add = sub.add_parser("add-client", help="create a client key, store its hash in the config, print the key")
    add.add_argument("--id")
    add.add_argument("--providers", default="*", help="comma-separated provider ids, or * for all")
    add.add_argument("--rpm", type=int)
    add.add_argument("--tpm", type=int)
    add.add_argument("--admin", action="store_true")
    add.set_defaults(func=cmd_add_client)
    hashed = sub.add_parser("hash-password", help="print a hashed value for UI_PASSWORD (the password is not kept)")
    hashed.set_defaults(func=cmd_hash_password)
    litellm = sub.add_parser("import-litellm", help="print a LiteLLM proxy config.yaml as this gateway's config.yaml "
                                                   "(what has no equivalent: warnings on stderr)")
    litellm.add_argument("file")
    litellm.set_defaults(func=cmd_import_litellm)
    listed = sub.add_parser("plugins", help="list the installed plugins and whether each loaded")
    listed.set_defaults(func=cmd_plugins)
    args = parser.parse_args(argv)
    if args.command != "plugins":
        install_plugins()  # before any config is read: it may name their types (failures: at start-up)
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)


if __name__ == "__main__":
    raise SystemExit(main())
