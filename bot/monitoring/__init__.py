"""Monitoring of a running daemon (``bot paper``, ``bot live``, ``bot demo``).

``/metrics`` in Prometheus' text format (:mod:`.metrics`, :mod:`.live`: counters the daemon
keeps anyway, read at scrape time; :mod:`.steps`: the few it did not keep) and ``/healthz``
(:mod:`.health`: a pure rule over facts read from the daemon, :mod:`.observed`), served by a
small aiohttp app on the daemon's event loop (:mod:`.server`). Configured by ``[monitoring]``.
"""
