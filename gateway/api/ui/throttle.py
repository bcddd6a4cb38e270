"""The throttle on dashboard password sign-ins: per remote address and per username, in the store.

Every password attempt first takes one slot in each of four sliding windows, all or none, in
the counters the client limiter uses (``runtime.counters``: shared by every worker and
replica when ``storage.runtime`` is Redis or PostgreSQL; in memory for one process on SQLite):

- the remote address's and the username's **burst** window: ``BURST`` failures per 30 s, so an
  operator who mistypes a few times waits half a minute at most;
- the remote address's and the username's **sustained** window: ``SUSTAINED`` failures per
  hour, which bounds a slow, patient attack to about 480 guesses a day for one username.

No slot free: 429 ``sign_in_throttled`` with ``Retry-After`` (when the window's oldest failure
slides out), decided before the password is looked at, so a thousand parallel guesses cost
``BURST`` password checks, not a thousand. A refused attempt takes no slot (hammering does not
prolong the lockout). A failed attempt keeps its slots; a successful one gives back only its
own, and clears nothing else: the failures before it stay counted, so nobody who holds some
valid credential (their own admin client's key, say) can sign in to buy more guesses.

The remote address is the peer of the connection (the ASGI scope's ``client``), never a
forwarded header: behind a proxy every sign-in comes from the proxy's address and they share
its windows. IPv6 addresses count by /64 (one host usually holds a whole /64). Addresses and
usernames are hashed into ``BUCKETS`` buckets per kind, so an attacker varying them cannot make
the store hold an unbounded number of windows (a window is dropped only when it is touched
again); two addresses that share a bucket share a throttle, which is rare and harmless.

Key sign-in is not throttled: keys are long and random, the API itself answers any key at once,
and the master key stays a way in while an attacker keeps a username locked.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import RateLimited
from ...store.base import Counters
from ...store.values import Ask, Reservation

BURST = 5  # failures per BURST_WINDOW_S, per address and per username
BURST_WINDOW_S = 30.0
SUSTAINED = 20  # failures per SUSTAINED_WINDOW_S, per address and per username
SUSTAINED_WINDOW_S = 3600.0
BUCKETS = 4096  # per kind (address, username): 3 hex digits of a SHA-256
_PREFIX = "ui-signin"


class SignInThrottled(RateLimited):
    """Too many failed dashboard sign-ins from this address or for this username (429)."""

    code = "sign_in_throttled"


def peer_address(scope: Mapping[str, Any]) -> str:
    """The connection's remote address from the ASGI scope (``"unknown"`` when the server gives none)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def address_key(address: str) -> str:
    """What an address counts as: IPv4 as is (also when IPv4-mapped), IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _bucket(kind: str, value: str) -> str:
    digest = hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()
    return f"{int(digest[:8], 16) % BUCKETS:03x}"


@dataclass(frozen=True, slots=True)
class Slots:
    """The slots one attempt holds (given back when the attempt succeeds)."""

    reservations: tuple[Reservation, ...]


class SignInThrottle:
    def __init__(self, counters: Callable[[], Counters]) -> None:
        self._counters = counters  # read on each call: the stores are opened after the routes are built

    def asks(self, address: str, username: str) -> list[tuple[str, Ask]]:
        """The four windows of an attempt, the hour-long ones first (a refusal then names the longer wait)."""
        addr = f"{_PREFIX}:addr:{_bucket('addr', address_key(address))}"
        user = f"{_PREFIX}:user:{_bucket('user', username)}"
        return [("address", Ask(f"{addr}:hour", SUSTAINED, 1, SUSTAINED_WINDOW_S)),
                ("username", Ask(f"{user}:hour", SUSTAINED, 1, SUSTAINED_WINDOW_S)),
                ("address", Ask(f"{addr}:burst", BURST, 1, BURST_WINDOW_S)),
                ("username", Ask(f"{user}:burst", BURST, 1, BURST_WINDOW_S))]

    async def take(self, address: str, username: str) -> Slots:
        """A slot in every window, or ``SignInThrottled`` (nothing taken)."""
        asks = self.asks(address, username)
        batch = await self._counters().reserve_all([ask for _, ask in asks])
        if batch.refused:
            refused = batch.results[-1]
            kind = asks[len(batch.results) - 1][0]
            where = "from this address" if kind == "address" else "for this username"
            seconds = max(1, int(refused.wait_s + 0.999))  # as Retry-After says
            raise SignInThrottled(f"Too many failed sign-ins {where}: retry in {seconds} seconds, or sign in "
                                  "with a key.", retry_after=refused.wait_s)
        return Slots(tuple(r.reservation for r in batch.results if r.reservation is not None))

    async def give_back(self, slots: Slots) -> None:
        """Withdraw a successful attempt's slots (and nothing else)."""
        await self._counters().settle_all([(reservation, 0.0) for reservation in slots.reservations])
