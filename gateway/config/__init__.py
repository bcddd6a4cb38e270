"""Configuration: schema, loading, the immutable snapshot, and live reload."""

from .loader import ConfigError, ConfigIssue
from .snapshot import Snapshot, load_snapshot

__all__ = ["ConfigError", "ConfigIssue", "Snapshot", "load_snapshot"]
