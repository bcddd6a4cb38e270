"""State that changes while serving, behind one async contract made of roles (``base.py``).

Roles (each a small Protocol; ``Store`` is all of them):

- ``Counters``: limit windows, expiring marks (cooldown, quarantine, circuit) and spend: what the
  request path decides with (the key pool and the client limiter hold one).
- ``Pins``: which provider key holds a file, an assistant, a thread.
- ``Directory``: the clients created at runtime.
- ``Ledger``: the usage ledger (rows written in batches), what it adds up to, and its live feed.
- ``Lifecycle``: the backend's name, its capability flags, ``ping`` and ``close``.

Backends (``memory/``, ``sqlite/``, ``redis/``, ``postgres/``) are each a package with one module
per role (``counters.py``, ``pins.py``, ``directory.py``, ``ledger.py``), the connection they share
(``connection.py``), and in ``__init__.py`` the store class, which puts them together.

How the roles compose: by composition, not inheritance. Each role is a small class that takes
the backend's connection object (``SqliteDb``, ``RedisLink``, ``PostgresPool``) and keeps no other
state, so each file reads on its own and mypy checks each class against its role's Protocol.
``composed.ComposedStore`` holds the four role objects and answers every ``Store`` method from
the one that owns it (written once, for every backend); the backend's class sets the capability
flags and adds ``open``, ``ping`` and ``close``. Callers keep one object per backend, as before,
and the request path can take the role it needs (``store.counters``) with nothing in between.
Mixins sharing ``self`` were the other way; they hide which role touches which state.

Capability flags (class attributes; callers decide by them, never by a backend's name):

- ``shared``: other processes and replicas see the same state (memory: no).
- ``durable``: the state outlives the gateway's process (memory: no).
- ``scales_workers``: several workers counting through it serve more than one alone (SQLite: no,
  so one worker keeps its windows and marks in memory and ``serve`` refuses several workers).
- ``serves_cache``: the response cache can live on the same server (Redis).

Adding a backend: a package under ``store/`` with a connection object, one class per role (each
passes its role's suite in ``tests/store/``, which runs against every backend ``conftest.py``
lists for that role), and a ``ComposedStore`` subclass with the flags; then its branches in
``factory.py`` (``backend_class``, ``open_backend``) and its type in ``config.py``.
``factory.open_stores`` builds what the ``storage`` config section names.
"""
