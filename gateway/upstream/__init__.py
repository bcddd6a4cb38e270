"""The shared HTTP client to providers (``client``) and the transports under it (``transports/``)."""
