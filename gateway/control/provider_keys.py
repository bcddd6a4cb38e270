"""Add or remove one provider key in the operator's files, validated like a reload.

Blocking (files, the operator lock): the admin API runs these on a thread. Each edit holds the
operator lock (``gateway/server/oplock.py``, the lock ``virtual-key.sh`` takes) from the first read to
the last write, builds the snapshot the edited files give and refuses the edit, writing nothing,
unless it is valid and passes the reload guard. It writes a file only if that still holds what
was read (``checked_edit.py``): an edit made by hand meanwhile is never reverted, the key edit is
redone on top of it (or refused with ``ChangedWhileEditing`` when the files keep changing). A new
key's secret always goes to ``.env`` (mode 600) as a new numbered variable:

- a provider without ``api_keys`` in the config draws keys from its type's variables
  (``OPENAI_API_KEY``, ``OPENAI_API_KEY_2`` …): the next number is written to ``.env``;
- a provider with an ``api_keys`` list gets the next variable of the series its entries use
  (``${OPENAI_API_KEY_2}`` → ``OPENAI_API_KEY_3``), or ``<ID>_API_KEY``, ``_2`` … of its own,
  and ``"${THAT_VARIABLE}"`` is appended to the list (comments kept: ``configfile.py``).

Removing a key drops its list entries and the ``.env`` variables that held it (a variable of the
process environment cannot be removed from here: that is a conflict).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from ..config.guard import reload_refusals
from ..config.loader import ConfigError, LoadedConfig, environment_from, parse_config
from ..config.schema import ProviderConfig
from ..config.snapshot import Snapshot, build_snapshot
from ..core.targets import ProviderKey, ProviderSpec
from ..providers.registry import TYPES, entry
from . import configfile
from .checked_edit import EditedFile, edit_files
from .envfile import next_numbered, remove_value, set_value

LOCK_TIMEOUT_S = 10.0  # an HTTP caller waits this long for the operator lock (scripts wait longer)
SECRET = re.compile(r"[A-Za-z0-9._~+/=:\-]{8,4096}")


class KeyEditError(Exception):
    """Base: the edit was refused and nothing was written."""


class ProviderNotFound(KeyEditError):
    pass


class KeyNotFound(KeyEditError):
    pass


class KeyConflict(KeyEditError):
    """The key is already in the pool, or sits where the gateway cannot remove it."""


class InvalidEdit(KeyEditError):
    """The files with the edit would not load (or the reload guard refuses them): the config error."""


@dataclass(frozen=True)
class Files:
    config: Path
    env: Path


@dataclass(frozen=True)
class KeyChange:
    provider_id: str
    label: str  # the key's label: in the new pool (added) or in the old one (removed)
    variables: tuple[str, ...]  # the .env variables written or removed
    config_changed: bool
    snapshot: Snapshot  # what the edited files give


@dataclass(frozen=True)
class _Texts:
    config: str
    env: str


def check_secret(secret: str) -> str | None:
    """Why ``secret`` cannot be a provider key written to ``.env`` (None: it can). Never echoes it."""
    if not SECRET.fullmatch(secret):
        return ("must be 8 to 4096 characters of letters, digits and . _ ~ + / = : - "
                "(no spaces, quotes, '#' or '$')")
    return None


def _build(texts: _Texts, filename: str) -> tuple[LoadedConfig, Snapshot]:
    try:
        loaded = parse_config(texts.config.encode(), filename, environment_from(texts.env))
        return loaded, build_snapshot(loaded, filename)
    except ConfigError as exc:
        raise InvalidEdit(exc.render()) from None


@dataclass(frozen=True)
class _Pool:
    """A provider as the files hold it: its place in ``llm_providers``, its config, its keys as
    built, and the variables its keys come from when ``api_keys`` is not given."""

    index: int
    config: ProviderConfig
    spec: ProviderSpec
    key_envs: tuple[str, ...]


def _pool(texts: _Texts, filename: str, provider_id: str) -> _Pool:
    loaded, snapshot = _build(texts, filename)
    for index, provider in enumerate(loaded.config.llm_providers):
        if provider.id == provider_id:
            envs = provider.key_env_names() or entry(provider.type).key_envs
            return _Pool(index, provider, snapshot.providers[provider_id], envs)
    raise ProviderNotFound(f"no provider '{provider_id}' in the config")


def _validated(texts: _Texts, filename: str, current: Snapshot) -> Snapshot:
    loaded, snapshot = _build(texts, filename)
    refusals = reload_refusals(loaded, current, snapshot) if snapshot.version != current.version else []
    if refusals:
        raise InvalidEdit(ConfigError(filename, refusals).render())
    return snapshot


def _edit(files: Files, who: str, lock_timeout_s: float, env_first: bool,
          change: Callable[[_Texts], tuple[_Texts, KeyChange]]) -> KeyChange:
    """Run ``change`` on the two files' texts and write what it gives (``checked_edit``: under the
    operator lock, never over an edit made meanwhile). ``env_first``: write ``.env`` before the
    config (a new variable exists before the config names it), else after (the config stops naming
    a variable before it goes)."""
    order = [EditedFile(files.env, private=True), EditedFile(files.config)]
    if not env_first:
        order.reverse()

    def on_texts(texts: list[str]) -> tuple[list[str], KeyChange]:
        env, config = texts if env_first else texts[::-1]
        new, result = change(_Texts(config, env))
        return ([new.env, new.config] if env_first else [new.config, new.env]), result

    return edit_files(order, on_texts, who, lock_timeout_s)


def _series_base(raw: Iterable[str], provider_id: str) -> str:
    """The variable series a provider's ``api_keys`` list uses, else one named after the provider."""
    bases = {re.sub(r"_\d+$", "", name) for item in raw for name in configfile.referenced_variables(item)}
    if len(bases) == 1:
        return bases.pop()
    own = re.sub(r"[^A-Z0-9]", "_", provider_id.upper()) + "_API_KEY"
    type_bases = {name for kind in TYPES.values() for name in kind.key_envs}
    return own if own not in type_bases else own.replace("_API_KEY", "_PROVIDER_API_KEY")


def _names_in_use(texts: _Texts) -> set[str]:
    return set(environment_from(texts.env)) | configfile.referenced_variables(texts.config)


def add_key(files: Files, current: Snapshot, provider_id: str, secret: str, who: str,
            lock_timeout_s: float = LOCK_TIMEOUT_S) -> KeyChange:
    """Write ``secret`` as a new key of ``provider_id`` (see the module docstring)."""
    filename = str(files.config)

    def change(old: _Texts) -> tuple[_Texts, KeyChange]:
        pool = _pool(old, filename, provider_id)
        ident = ProviderKey(provider_id, 0, secret).ident
        if any(k.ident == ident for k in pool.spec.keys):
            raise KeyConflict(f"provider '{provider_id}' already has this key")
        if pool.config.api_keys is None:
            variable = next_numbered(pool.key_envs[0], _names_in_use(old))
            new = _Texts(old.config, set_value(old.env, variable, secret))
        else:
            raw = configfile.raw_keys(old.config, pool.index)
            variable = next_numbered(_series_base(raw, provider_id), _names_in_use(old))
            new = _Texts(configfile.append_key(old.config, pool.index, "${" + variable + "}"),
                         set_value(old.env, variable, secret))
        result = _validated(new, filename, current)
        label = next((k.label for k in result.providers[provider_id].keys if k.ident == ident), None)
        if label is None:
            raise KeyConflict(f"the key would not join provider '{provider_id}''s pool "
                              f"({variable} is set in the gateway's process environment)")
        return new, KeyChange(provider_id, label, (variable,), new.config != old.config, result)

    return _edit(files, f"admin API: add a key to {provider_id} ({who})", lock_timeout_s, True, change)


def _env_file_names(env_text: str) -> set[str]:
    return set(dotenv_values(stream=io.StringIO(env_text)))


def _holders(names: Iterable[str], environ: Mapping[str, str], secret: str) -> list[str]:
    return sorted(n for n in names if environ.get(n, "").strip() == secret)


def _drop_env(old_env: str, variables: Iterable[str], provider_id: str) -> str:
    env = old_env
    in_file = _env_file_names(old_env)
    for name in variables:
        if name in os.environ or name not in in_file:
            raise KeyConflict(f"the key of provider '{provider_id}' comes from {name} in the gateway's process "
                              "environment, not from .env: remove it there and restart")
        env = remove_value(env, name)
    return env


def remove_key(files: Files, current: Snapshot, provider_id: str, label: str, who: str,
               lock_timeout_s: float = LOCK_TIMEOUT_S) -> KeyChange:
    """Remove the key ``label`` (``provider#N``) of ``provider_id`` (see the module docstring)."""
    filename = str(files.config)

    def change(old: _Texts) -> tuple[_Texts, KeyChange]:
        pool = _pool(old, filename, provider_id)
        key = next((k for k in pool.spec.keys if k.label == label), None)
        if key is None:
            raise KeyNotFound(f"provider '{provider_id}' has no key '{label}'")
        environ = environment_from(old.env)
        if pool.config.api_keys is None:
            pattern = re.compile(rf"^(?:{'|'.join(map(re.escape, pool.key_envs))})(?:_\d+)?$")
            variables = _holders((n for n in environ if pattern.match(n)), environ, key.secret)
            new = _Texts(old.config, _drop_env(old.env, variables, provider_id))
        else:
            positions = {i for i, value in enumerate(pool.config.api_keys) if value.strip() == key.secret}
            raw = configfile.raw_keys(old.config, pool.index)
            config = configfile.remove_keys(old.config, pool.index, positions)
            named = {n for i in positions for n in configfile.referenced_variables(raw[i])}
            orphans = named - configfile.referenced_variables(config)
            variables = [n for n in sorted(orphans) if n in _env_file_names(old.env) and n not in os.environ]
            new = _Texts(config, _drop_env(old.env, variables, provider_id))
        result = _validated(new, filename, current)
        return new, KeyChange(provider_id, label, tuple(variables), new.config != old.config, result)

    return _edit(files, f"admin API: remove key {label} ({who})", lock_timeout_s, False, change)
