"""The dashboard: its static files and sign-in API (``resources``) and the signed session (``session``)."""
