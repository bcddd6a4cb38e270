"""What a reload refuses although a start would accept it: a file that looks cut short.

An editor or ``cat new.yaml > config.yaml`` can leave the file empty or half-written for a
moment. Applied, such a file drops every provider or every client and turns traffic into
401s and 400s. So a reload refuses an empty document, a document without ``llm_providers``, a
result with no providers (while providers exist), and one that drops every client while
clients exist. A restart
applies such a file deliberately (the start does not run these checks).
"""

from __future__ import annotations

from .loader import ConfigIssue, LoadedConfig
from .snapshot import Snapshot

SUFFIX = "; refused on reload (half-written?), still serving the last good config (a restart applies it)"


def reload_refusals(loaded: LoadedConfig, current: Snapshot, new: Snapshot) -> list[ConfigIssue]:
    """Why ``new`` must not replace ``current`` on a reload; empty if it may."""
    if not loaded.config.model_fields_set:
        return [ConfigIssue("", "the document is empty" + SUFFIX, None)]
    issues: list[ConfigIssue] = []
    if current.providers:  # a gateway started without providers on purpose has none to lose
        issues.extend(_provider_refusals(loaded, new))
    if current.clients and not new.clients:
        issues.append(ConfigIssue("api_keys", f"the reload would drop every client ({len(current.clients)} "
                                              "configured now)" + SUFFIX, loaded.lines.get(("api_keys",))))
    return issues


def _provider_refusals(loaded: LoadedConfig, new: Snapshot) -> list[ConfigIssue]:
    if "llm_providers" not in loaded.config.model_fields_set:
        return [ConfigIssue("llm_providers", "the document has no llm_providers" + SUFFIX, None)]
    if not new.providers:
        return [ConfigIssue("llm_providers", "the reload would leave no providers" + SUFFIX,
                            loaded.lines.get(("llm_providers",)))]
    return []
