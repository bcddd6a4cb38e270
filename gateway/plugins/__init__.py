"""Extensions by entry point: an installed package adds a provider type, a guard type, a sink type
or a store backend that config.yaml can then name (docs/plugins.md).

``loader.py`` finds and imports the entry points once per process (nothing of the gateway's own);
``install.py`` checks what each one names and puts it in its group's table.
"""
