"""The HTTP transports under the upstream client: the lean HTTP/1.1 one (the default), and which one a
process uses (``choice``)."""
