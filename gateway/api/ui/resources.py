"""The dashboard: its static files under ``/ui`` and its sign-in API under ``/ui/api``.

The files in ``gateway/ui/`` are read once when the routes are built and served from memory
with an ETag (``Cache-Control: no-cache``: the browser revalidates, a 304 costs no body) and a
strict Content-Security-Policy ('self' only, no inline script). Only files that exist there are
served, so no request path can reach anything else on disk.

Sign-in (``POST /ui/api/login``) takes ``{"key"}`` (the master key or an admin client key) or
``{"username", "password"}`` (``UI_USERNAME``/``UI_PASSWORD``) and sets the signed session
cookie described in ``session.py``. Password attempts are throttled per remote address
and per username before the password is checked (``throttle.py``); a wrong credential is
answered at once (the throttle, not a delay, bounds the guesses). Sign-out
(``POST /ui/api/logout``) ends the session in every worker and replica (``signout.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import orjson

from ...errors import AdminRequired, AuthenticationError, InvalidRequest, NotFound, PermissionDenied, StoreUnavailable
from ...pipeline.auth import authenticate_any
from ...server.runtime import Runtime
from ...store.base import StoreDown
from ..common import read_json
from ..table import PUBLIC, Operation, Route
from .session import COOKIE, CredentialsFile, SessionKeeper, install, load_secret
from .signout import SignOuts
from .throttle import SignInThrottle, peer_address

log = logging.getLogger("gateway.ui")

UI_DIR = Path(__file__).resolve().parents[2] / "ui"  # gateway/ui: the static files
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LOGIN_BODY = 16 * 1024
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    data: bytes
    content_type: str
    etag: str


def load_static(root: Path = UI_DIR) -> dict[str, StaticFile]:
    """Every servable file under ``root`` by its path relative to it (``index.html``, ``vendor/…``)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        if not path.is_file() or content_type is None or path.name.startswith("."):
            continue
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:20] + '"'
        files[path.relative_to(root).as_posix()] = StaticFile(data, content_type, etag)
    return files


def secure_headers(resp: falcon.asgi.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        resp.set_header(name, value)


class StaticResource:
    """``GET /ui`` (index.html) and ``GET /ui/<file>``."""

    def __init__(self, files: dict[str, StaticFile]):
        self.files = files

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str = "index.html") -> None:
        found = self.files.get(name)
        if found is None:
            raise NotFound(f"No such dashboard file: {name}.")
        secure_headers(resp)
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("ETag", found.etag)
        resp.content_type = found.content_type
        if found.etag in (req.get_header("if-none-match") or ""):
            resp.status = 304
            return
        resp.data = found.data

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str = "index.html") -> None:
        await self.on_get(req, resp, name)
        resp.data = None


class UISessionAPI:
    """Shared by the three session endpoints."""

    def __init__(self, runtime: Runtime, keeper: SessionKeeper):
        self.runtime = runtime
        self.keeper = keeper
        self.throttle = SignInThrottle(lambda: runtime.counters)

    async def session_body(self, req: falcon.asgi.Request) -> dict[str, Any]:
        session = await self.keeper.from_request(req)
        if session is None:
            return {"signed_in": False, "csrf_token": "", "who": None, "expires_at": None}
        return {"signed_in": True, "csrf_token": self.keeper.csrf_token(session), "who": session.who,
                "expires_at": session.expires}


def _json(resp: falcon.asgi.Response, body: dict[str, Any], status: int = 200) -> None:
    secure_headers(resp)
    resp.set_header("Cache-Control", "no-store")
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)


def _is_https(req: falcon.asgi.Request) -> bool:
    forwarded = (req.get_header("x-forwarded-proto") or "").split(",")[0].strip().lower()
    return forwarded == "https" or req.scheme == "https"


def _check_origin(req: falcon.asgi.Request) -> None:
    """Refuse a call a browser says came from another site's page (``Sec-Fetch-Site``; a proxy
    may rewrite Host, so Origin is not compared with it). The dashboard's own pages are always
    same-origin; clients that are not browsers send no such header."""
    site = (req.get_header("sec-fetch-site") or "").lower()
    if site not in ("", "same-origin", "none"):
        raise PermissionDenied("Cross-site call to the dashboard API refused.")


class LoginResource(UISessionAPI):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _check_origin(req)
        if not (req.content_type or "").lower().startswith("application/json"):
            raise InvalidRequest("Send the sign-in as JSON: {\"key\"} or {\"username\", \"password\"}.")
        body = await read_json(req, MAX_LOGIN_BODY)
        snapshot = self.runtime.snapshot
        remote = peer_address(req.scope)
        try:
            who = await self._who(body, remote)
        except (AuthenticationError, AdminRequired) as exc:
            log.warning("dashboard sign-in refused", extra={
                "method": "key" if "key" in body else "password", "reason": exc.code, "remote": remote})
            raise
        token, session = await self.keeper.issue(who, snapshot)
        resp.set_cookie(COOKIE, token, max_age=self.keeper.ttl_s, path="/", secure=_is_https(req),
                        http_only=True, same_site="Strict")
        log.info("dashboard sign-in", extra={"who": who, "remote": remote})
        _json(resp, {"signed_in": True, "csrf_token": self.keeper.csrf_token(session), "who": who,
                     "expires_at": session.expires})

    async def _who(self, body: dict[str, Any], remote: str) -> str:
        key, username, password = body.get("key"), body.get("username"), body.get("password")
        if isinstance(key, str) and key:
            caller = await authenticate_any(self.runtime.snapshot, self.runtime.directory, f"Bearer {key}", None)
            if not caller.client.admin:
                raise AdminRequired("The dashboard needs the master key or the key of a client with 'admin: true'.")
            return "master" if caller.is_master else f"client:{caller.client.id}"
        if isinstance(username, str) and isinstance(password, str) and username and password:
            slots = await self.throttle.take(remote, username)  # 429 before the password is looked at
            creds = self.keeper.credentials.current()
            # the password may be a PBKDF2 hash: checked off the event loop
            if creds is not None and await asyncio.to_thread(creds.matches, username, password):
                await self.throttle.give_back(slots)
                return f"user:{creds.username}"
            raise AuthenticationError("Wrong username or password.")
        raise InvalidRequest("Send {\"key\": ...} or {\"username\": ..., \"password\": ...}.")


class LogoutResource(UISessionAPI):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _check_origin(req)
        try:
            session = await self.keeper.from_request(req)
        except StoreUnavailable:  # the store is out of reach (on_unavailable: closed): the browser forgets it anyway
            _forget_cookie(req, resp)
            raise
        if session is not None and not self.keeper.csrf_ok(req, session):
            raise PermissionDenied("Sign-out needs the 'x-csrf-token' header of the session.")
        _forget_cookie(req, resp)
        if session is not None:
            kept = await self.keeper.revoke(session)
            log.info("dashboard sign-out", extra={"who": session.who})
            if not kept:
                raise StoreUnavailable("Signed out in this browser and this process, but the gateway's store is "
                                       "unreachable: elsewhere a copy of the session's cookie stays valid until it "
                                       "expires.")
        _json(resp, {"signed_in": False})


def _forget_cookie(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
    resp.set_cookie(COOKIE, "", max_age=0, expires=_EPOCH, path="/", secure=_is_https(req), http_only=True,
                    same_site="Strict")


class SessionResource(UISessionAPI):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _json(resp, await self.session_body(req))


_KEEPERS: weakref.WeakKeyDictionary[Runtime, SessionKeeper] = weakref.WeakKeyDictionary()


def keeper_for(runtime: Runtime) -> SessionKeeper:
    """The worker's one session keeper (made with the first dashboard resource), which the sign-in
    resources share and ``require_admin`` consults."""
    keeper = _KEEPERS.get(runtime)
    if keeper is None:
        keeper = _KEEPERS[runtime] = _make_keeper(runtime)
        install(keeper)
    return keeper


def _make_keeper(runtime: Runtime) -> SessionKeeper:
    data_dir = runtime.settings.data_dir
    try:
        secret = load_secret(data_dir)
    except (OSError, ValueError) as exc:
        secret = secrets.token_bytes(32)
        log.warning("dashboard session secret not kept (sessions end when this worker stops and are not "
                    "shared between workers)", extra={"data_dir": str(data_dir), "error": str(exc)})

    async def directory_admin(client_id: str) -> bytes | None:
        try:
            record = await runtime.directory.store.get_client(client_id)
        except StoreDown:
            return None
        return record.key_digest if record is not None and record.admin else None

    signouts = SignOuts(lambda: runtime.stores.runtime, lambda: runtime.guard)
    return SessionKeeper(secret, lambda: runtime.snapshot, CredentialsFile(runtime.settings.env_file), signouts,
                         directory_admin=directory_admin)


UI_ROUTES: tuple[Route, ...] = (
    Route(("/ui", "/ui/{name:path}"), "Dashboard", (
        Operation("GET", "The dashboard's static files", media="text/html", auth=PUBLIC, errors=(404,)),
        Operation("HEAD", "The dashboard's static files (headers only)", media="text/html", auth=PUBLIC,
                  errors=(404,))),
        lambda s: StaticResource(load_static())),
    Route(("/ui/api/login",), "Dashboard", (
        Operation("POST", "Dashboard sign-in", auth=PUBLIC, errors=(400, 401, 429)),),
        lambda s: LoginResource(s.runtime, keeper_for(s.runtime))),
    Route(("/ui/api/logout",), "Dashboard", (
        Operation("POST", "Dashboard sign-out", auth=PUBLIC, errors=(403,)),),
        lambda s: LogoutResource(s.runtime, keeper_for(s.runtime))),
    Route(("/ui/api/session",), "Dashboard", (
        Operation("GET", "The dashboard session", auth=PUBLIC, errors=(401,)),),
        lambda s: SessionResource(s.runtime, keeper_for(s.runtime))),
)
