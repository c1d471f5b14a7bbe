"""Alerts on new clearing in watched areas: an outbox written by the ingest, delivered after it.

- :mod:`.records` — what the stores keep (watches, deliveries);
- :mod:`.watch` — the check an ingest's transaction runs on its new zones, and starting a watch;
- :mod:`.webhook` — a signed POST that never goes to our own network;
- :mod:`.deliver` — sending the outbox, with retries and backoff.

This package is imported by the stores (records) and must stay light: nothing is imported here.
"""
