"""The control plane's writers: ``.env`` and ``config.yaml`` edited safely (atomic, mode kept, under
the operator lock) for the admin API."""
