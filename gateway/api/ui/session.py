"""The dashboard's sign-in session: a signed, expiring cookie and its CSRF token.

The cookie ``gw_session`` holds ``v1.<payload>.<signature>``: the payload is base64url JSON
``{"sid", "who", "fp", "exp"}`` and the signature HMAC-SHA256 over ``v1.<payload>`` with a
secret generated once and kept in the data directory (``<GATEWAY_DATA_DIR>/ui-session.key``,
mode 600), so every worker and every restart accept the same cookies. ``who`` is ``master``,
``client:<id>`` or ``user:<name>``; ``fp`` is an HMAC fingerprint of that principal's current
credential, so rotating the master key, rotating or demoting the admin client, or changing
``UI_USERNAME``/``UI_PASSWORD`` ends the sessions it opened. The CSRF token is
HMAC(secret, ``csrf:`` + sid): every call other than GET/HEAD/OPTIONS must send it in the
``x-csrf-token`` header. Nothing here ever holds a key or password longer than one call.

Signing out ends the session everywhere for the rest of its lifetime: the sign-out is kept in
the runtime store (``signout.py``), which every worker and replica reads and which outlives
a restart, and each session check consults it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from ...config.loader import read_environment
from ...config.snapshot import Snapshot
from ...errors import AuthenticationError, PermissionDenied
from .signout import SignOuts

log = logging.getLogger("gateway.ui")

COOKIE = "gw_session"
CSRF_HEADER = "x-csrf-token"
TTL_S = 12 * 3600
SECRET_FILE = "ui-session.key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USERNAME_ENV = "UI_USERNAME"
PASSWORD_ENV = "UI_PASSWORD"
_VERSION = "v1"
_PBKDF2 = "pbkdf2_sha256"


class CsrfFailed(PermissionDenied):
    """A signed-in dashboard session made a mutating call without its ``x-csrf-token``."""

    code = "csrf_failed"


class SessionRequest(Protocol):
    """What the session check reads from a request (``falcon.asgi.Request`` has it)."""

    @property
    def method(self) -> str: ...

    def get_header(self, name: str) -> str | None: ...

    def get_cookie_values(self, name: str) -> list[str] | None: ...


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    who: str
    fingerprint: str
    expires: int


@dataclass(frozen=True, slots=True)
class UICredentials:
    """``UI_USERNAME``/``UI_PASSWORD``; the password in clear or as ``pbkdf2_sha256$iter$salt$hash``."""

    username: str
    password: str = ""

    def matches(self, username: str, password: str) -> bool:
        """Constant-time check (both fields always compared)."""
        name_ok = hmac.compare_digest(_sha(username), _sha(self.username))
        return name_ok & password_matches(password, self.password)


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def password_matches(given: str, stored: str) -> bool:
    """``stored`` is the clear password or ``pbkdf2_sha256$<iterations>$<salt b64>$<hash b64>``."""
    if not stored:
        return False
    parts = stored.split("$")
    if len(parts) == 4 and parts[0] == _PBKDF2 and parts[1].isdigit():
        try:
            salt, want = _unb64(parts[2]), _unb64(parts[3])
        except ValueError:
            return False
        got = hashlib.pbkdf2_hmac("sha256", given.encode(), salt, int(parts[1]))
        return hmac.compare_digest(got, want)
    return hmac.compare_digest(_sha(given), _sha(stored))


def hash_password(password: str, iterations: int = 200_000) -> str:
    """A value for ``UI_PASSWORD`` that does not keep the password itself."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_PBKDF2}${iterations}${_b64(salt)}${_b64(digest)}"


def load_secret(data_dir: Path) -> bytes:
    """The signing secret in ``data_dir``: created once (mode 600, published atomically), then read."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _publish_secret(path)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
        log.warning("dashboard session secret was readable by others: set it to mode 600", extra={"path": str(path)})
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) < 32:
        raise ValueError(f"{path} holds a secret shorter than 32 bytes; delete it and restart")
    return secret


def _publish_secret(path: Path) -> None:
    """Write a new secret to a temp file, then link it into place: a racing worker's link fails
    and both read the one that won, never a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=".ui-session.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
            log.info("created the dashboard session secret", extra={"path": str(path)})
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


class CredentialsFile:
    """``UI_USERNAME``/``UI_PASSWORD`` from the environment over ``.env``, re-read when the file changes."""

    def __init__(self, env_file: Path):
        self.env_file = env_file
        self._stamp: tuple[int, int, int] | None = None
        self._value: UICredentials | None = None
        self._loaded = False

    def current(self) -> UICredentials | None:
        stamp = self._file_stamp()
        if not self._loaded or stamp != self._stamp:
            environ = read_environment(self.env_file)
            username = environ.get(USERNAME_ENV, "").strip()
            password = environ.get(PASSWORD_ENV, "")
            self._value = UICredentials(username, password) if username and password else None
            self._stamp, self._loaded = stamp, True
        return self._value

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.env_file.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size


DirectoryAdmin = Callable[[str], Awaitable[bytes | None]]


class SessionKeeper:
    """Issues and checks session cookies for one worker."""

    def __init__(self, secret: bytes, snapshot: Callable[[], Snapshot], credentials: CredentialsFile,
                 signouts: SignOuts, ttl_s: int = TTL_S, directory_admin: DirectoryAdmin | None = None):
        self.secret = secret
        # the key digest of an ``admin: true`` client of the store's directory, by id (or None)
        self.directory_admin = directory_admin
        self.snapshot = snapshot
        self.credentials = credentials
        self.ttl_s = ttl_s
        self.signouts = signouts  # sessions signed out, in the runtime store

    def _mac(self, message: str) -> bytes:
        return hmac.new(self.secret, message.encode(), hashlib.sha256).digest()

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac("csrf:" + session.sid))

    async def fingerprint(self, who: str, snapshot: Snapshot) -> str | None:
        """An HMAC of the principal's current credential; None if it no longer exists or is not admin."""
        if who == "master":
            material = snapshot.master_digest
        elif who.startswith("client:"):
            client_id = who.removeprefix("client:")
            material = next((c.digest for c in snapshot.clients.values() if c.id == client_id and c.admin), None)
            if client_id not in snapshot.client_ids and self.directory_admin is not None:
                material = await self.directory_admin(client_id)  # config.yaml's id shadows the directory's
        elif who.startswith("user:"):
            creds = self.credentials.current()
            name = who.removeprefix("user:")
            material = _sha(creds.username + "\0" + creds.password) if creds and creds.username == name else None
        else:
            material = None
        return None if material is None else _b64(self._mac("fp:" + who + ":" + material.hex())[:16])

    async def issue(self, who: str, snapshot: Snapshot) -> tuple[str, Session]:
        fingerprint = await self.fingerprint(who, snapshot)
        if fingerprint is None:
            raise AuthenticationError("This principal cannot sign in to the dashboard.")
        session = Session(_b64(secrets.token_bytes(16)), who, fingerprint, int(time.time()) + self.ttl_s)
        payload = _b64(orjson.dumps({"sid": session.sid, "who": who, "fp": fingerprint, "exp": session.expires}))
        signed = f"{_VERSION}.{payload}"
        return f"{signed}.{_b64(self._mac(signed))}", session

    async def read(self, token: str, snapshot: Snapshot) -> Session | None:
        """The session in ``token`` if its signature, expiry and principal are all still good."""
        version, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if version != _VERSION or not payload or not signature:
            return None
        try:
            if not hmac.compare_digest(_unb64(signature), self._mac(f"{version}.{payload}")):
                return None
            data = orjson.loads(_unb64(payload))
            session = Session(str(data["sid"]), str(data["who"]), str(data["fp"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= time.time():
            return None
        current = await self.fingerprint(session.who, snapshot)
        if current is None or not hmac.compare_digest(current, session.fingerprint):
            return None
        if await self.signouts.ended(session.sid):  # last: a forged or stale cookie costs no store read
            return None
        return session

    async def revoke(self, session: Session) -> bool:
        """Sign ``session`` out everywhere; False when that could only be kept in this process."""
        return await self.signouts.record(session.sid, session.expires)

    async def from_request(self, req: SessionRequest, snapshot: Snapshot | None = None) -> Session | None:
        for token in req.get_cookie_values(COOKIE) or ():
            session = await self.read(token, snapshot or self.snapshot())
            if session is not None:
                return session
        return None

    def csrf_ok(self, req: SessionRequest, session: Session) -> bool:
        if req.method.upper() in SAFE_METHODS:
            return True
        sent = req.get_header(CSRF_HEADER) or ""
        return hmac.compare_digest(sent.encode(), self.csrf_token(session).encode())


_keeper: SessionKeeper | None = None


def install(keeper: SessionKeeper | None) -> None:
    """Make ``keeper`` the one ``session_admin`` consults (done once when the routes are built)."""
    global _keeper
    _keeper = keeper


async def require_session(req: SessionRequest, snapshot: Snapshot | None = None) -> str | None:
    """Who is signed in: None when the request carries no session cookie at all; raises
    ``AuthenticationError`` (401) for an invalid or expired one and ``CsrfFailed`` (403) for a
    mutating call whose ``x-csrf-token`` header does not match the session."""
    if _keeper is None or not req.get_cookie_values(COOKIE):
        return None
    session = await _keeper.from_request(req, snapshot)
    if session is None:
        raise AuthenticationError("The dashboard session is invalid or has expired: sign in again.")
    if not _keeper.csrf_ok(req, session):
        raise CsrfFailed(f"This call needs the '{CSRF_HEADER}' header of the dashboard session.")
    return session.who


async def session_admin(req: SessionRequest, snapshot: Snapshot | None = None) -> str | None:
    """Who is signed in, if the cookie is valid and, for a mutating call, the CSRF header matches."""
    try:
        return await require_session(req, snapshot)
    except (AuthenticationError, CsrfFailed):
        return None
