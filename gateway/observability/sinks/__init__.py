"""Where each request's access record goes besides the usage ledger: ``observability.sinks``.

    record()  ──put──►  SinkHub  ──►  each sink's bounded queue  ──►  its worker: batch, deliver, retry
    (the request path:               (full: the record is dropped     (file: JSON lines with rotation;
     a deque append per sink)         and counted, never waited on)     webhook: POSTs; otlp_logs: OTLP)

``record.py`` is the record (the ledger row's fields, the endpoint, content only with
``observability.capture_content``); ``base.py`` the contract every sink type meets, built-in or
plugin (``Sink``, ``SinkType``); ``batch.py`` the queue, batching and retries the built-ins share;
``config.py`` their config models; ``registry.py`` the table of sink types; ``hub.py`` what a
worker holds: the sinks of the config in force, re-made on reload without losing records.
"""
