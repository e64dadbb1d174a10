"""Peer engines for the replay benchmark (``bench/replay.py``).

Each peer module (``backtrader_peer``, ``nautilus_peer``) reproduces the project engine's
moving-average crossover workload in another backtesting engine and exposes
``run(starts_ms, ohlcv, *, fee_rate, cash, qty_step, fast, slow) -> dict``. Run as a script,
a peer generates the seeded synthetic bars itself and prints one JSON line with its result and
peak RSS, so the orchestrator can start each peer in its own process. ``common`` holds the
numpy-only pieces they share (data preparation, price rounding, sizing rule); it imports in the
project venv too. See ``README.md`` for how each peer maps the project's semantics.
"""
