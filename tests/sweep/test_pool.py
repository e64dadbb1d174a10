"""Choosing where trials run: Ray unless told otherwise, in order when Ray cannot start."""

import logging

import pytest

from backtest import sweep_pool
from backtest.sweep_pool import PoolError, SerialPool, open_pool


def broken_ray(*args, **kwargs):
    raise RuntimeError("no raylet\nsecond line")


def test_serial_when_asked():
    assert isinstance(open_pool(serial=True, address=None, workers=2, memory_bytes=1), SerialPool)


def test_falls_back_to_serial_with_one_warning_when_local_ray_cannot_start(monkeypatch, caplog):
    monkeypatch.setattr(sweep_pool, "RayPool", broken_ray)
    with caplog.at_level(logging.WARNING):
        pool = open_pool(serial=False, address=None, workers=2, memory_bytes=1)
    assert isinstance(pool, SerialPool)
    assert [r.getMessage() for r in caplog.records] == [
        "Ray cannot start here (RuntimeError: no raylet); running the trials one by one"
    ]


def test_an_unreachable_cluster_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(sweep_pool, "RayPool", broken_ray)
    with pytest.raises(PoolError, match="--address auto: cannot join the Ray cluster"):
        open_pool(serial=False, address="auto", workers=None, memory_bytes=1)
