"""Reading bar files: CSV and Parquet agree, bad files are refused with the file named."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.timeutil import HOUR_MS
from bot.feeds.loaders import DataError, load_funding, load_panel, read_bars


def frame(n: int = 5, start: int = 0) -> pd.DataFrame:
    t = start + HOUR_MS * np.arange(n)
    price = 100.0 + np.arange(n)
    return pd.DataFrame({"timestamp_ms": t, "open": price, "high": price + 1, "low": price - 1,
                         "close": price + 0.5, "volume": 10.0})  # fmt: skip


def test_csv_and_parquet_give_the_same_aligned_panel(tmp_path: Path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "pq" / "1h").mkdir(parents=True)
    frame(6).to_csv(tmp_path / "csv" / "AAAUSDT.csv", index=False)
    frame(4, start=2 * HOUR_MS).to_csv(tmp_path / "csv" / "BBBUSDT.csv", index=False)
    frame(6).to_parquet(tmp_path / "pq" / "1h" / "AAAUSDT.parquet")
    frame(4, start=2 * HOUR_MS).to_parquet(tmp_path / "pq" / "1h" / "BBBUSDT.parquet")
    a = load_panel(tmp_path / "csv", ("AAAUSDT", "BBBUSDT"), "1h")
    b = load_panel(tmp_path / "pq", ("AAAUSDT", "BBBUSDT"), "1h")
    np.testing.assert_array_equal(a.starts, b.starts)
    np.testing.assert_array_equal(a.present, b.present)
    np.testing.assert_array_equal(a.values[a.present], b.values[b.present])
    assert a.present[:, 1].tolist() == [False, False, True, True, True, True]
    clipped = load_panel(tmp_path / "csv", ("AAAUSDT",), "1h", start=HOUR_MS, end=3 * HOUR_MS)
    assert clipped.starts.tolist() == [HOUR_MS, 2 * HOUR_MS]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.iloc[[0, 2, 1, 3]], "not strictly increasing at row 2"),
        (lambda f: f.assign(timestamp_ms=f.timestamp_ms + 1), "not on the 1h grid"),
        (lambda f: f.assign(close=[1.0, np.nan, 1.0, 1.0, 1.0]), "NaN in row 1"),
        (lambda f: f.drop(columns=["volume"]), "missing columns volume"),
        (lambda f: f.rename(columns={"timestamp_ms": "when"}), "no time column"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path: Path, change, message):
    path = tmp_path / "XUSDT.csv"
    change(frame()).to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as caught:
        read_bars(path, "1h")
    assert str(path) in str(caught.value)


def test_missing_symbol_file_and_empty_range(tmp_path: Path):
    frame().to_csv(tmp_path / "AAAUSDT.csv", index=False)
    with pytest.raises(DataError, match="no 1h bars for ZZZUSDT"):
        load_panel(tmp_path, ("ZZZUSDT",), "1h")
    with pytest.raises(DataError, match="no 1h bars in the requested range for AAAUSDT"):
        load_panel(tmp_path, ("AAAUSDT",), "1h", start=100 * HOUR_MS)


def test_real_funding_rates_load_sorted(linear_dir: Path):
    funding = load_funding(linear_dir, ("BTCUSDT", "NOPEUSDT"))
    assert set(funding) == {"BTCUSDT"}
    times, rates = funding["BTCUSDT"]
    assert np.all(np.diff(times) > 0) and len(times) > 1500
    assert np.all(times % (8 * HOUR_MS) == 0)  # Bybit settles at 00:00, 08:00, 16:00 UTC
    assert np.abs(rates).max() < 0.01
