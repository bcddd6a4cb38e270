"""The control plane's writers: ``.env`` and ``config.yaml`` edited safely (atomic, mode kept, under
the operator lock, never over an edit made meanwhile: ``checked_edit.py``) for the admin API and
``python -m gateway add-client``."""
