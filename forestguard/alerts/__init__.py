"""Alerts on new clearing in watched areas: an outbox written by the ingest, delivered after it.

- :mod:`forestguard.stores.outbox` — what the stores keep (watches, deliveries) and the check
  an ingest's transaction runs on its new zones (below the stores, which import it);
- :mod:`.watch` — starting a watch;
- :mod:`.webhook` — a signed POST that never goes to our own network;
- :mod:`.deliver` — sending the outbox, with retries and backoff.

This package sits above the stores (it reads and writes through a ``ZoneStore``); nothing is
imported here.
"""
