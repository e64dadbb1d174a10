"""The engine core: events, clock, buffer, barrier, portfolio, risk, execution, engine.

Imports no venue, no SQL and no torch, so it runs the same under a backtest, the paper daemon
and a test.
"""
