"""Metrics, structured logging with redaction, usage accounting."""
