"""Reading bar files: CSV and Parquet agree, bad files are refused with the file named."""

import re
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
        (lambda f: f.assign(close=f.close.where(f.index != 1)),
         r"row 1: non-finite price \(o=101.0 h=102.0 l=100.0 c=nan\)"),
        (lambda f: f.drop(columns=["volume"]), "missing columns volume"),
        (lambda f: f.rename(columns={"timestamp_ms": "when"}), "no time column"),
        (lambda f: f.assign(timestamp_ms=f.timestamp_ms.where(f.index != 2)),
         "row 2: missing time"),
        (lambda f: f.assign(timestamp_ms=f.timestamp_ms + 0.5),
         r"row 0: time 0.5 is not a whole number of milliseconds"),
        (lambda f: f.assign(timestamp_ms=(f.timestamp_ms + 1_699_999_200_000) * 1000),  # in µs
         r"row 0: time 1699999200000000 is not epoch milliseconds"),
        (lambda f: f.assign(timestamp_ms=f.timestamp_ms - 2 * HOUR_MS),
         r"row 0: time -7200000 is not epoch milliseconds"),
        (lambda f: f.assign(open=["100", "101", "abc", "103", "104"]),
         "row 2: open 'abc' is not a number"),
        (lambda f: f.assign(low=f.low.where(f.index != 3, -5.0)), "row 3: price not positive"),
        (lambda f: f.assign(high=f.high.where(f.index != 1, 50.0)),
         r"row 1: inconsistent range \(o=101.0 h=50.0 l=100.0"),
        (lambda f: f.assign(high=f.high.where(f.index != 4, 2e9)),
         "row 4: implausible price above 1e\\+09"),
        (lambda f: f.assign(volume=[10.0, 10.0, np.inf, -1.0, 10.0]),
         r"row 2: bad volume inf \(and 1 more bad rows\)"),
        (lambda f: f.assign(volume=f.volume.where(f.index != 0)), "row 0: bad volume nan"),
        (lambda f: f.assign(turnover=[1.0, np.nan, -1.0, 1.0, 1.0]), "row 2: bad turnover -1.0"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_naming_the_file_row_and_reason(tmp_path: Path, change, message):
    path = tmp_path / "XUSDT.csv"
    change(frame()).to_csv(path, index=False)
    with pytest.raises(DataError, match=message) as caught:
        read_bars(path, "1h")
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_parquet_rows_pass_the_same_rules(tmp_path: Path):
    path = tmp_path / "XUSDT.parquet"
    frame().assign(high=[101.0, 102.0, 1.0, 104.0, 105.0]).to_parquet(path)
    with pytest.raises(DataError, match=f"{path}: row 2: inconsistent range"):
        read_bars(path, "1h")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file (no header, no rows)"),
        (b"timestamp_ms,open,high,low,close,volume\n", "no bars (a header and no rows)"),
        (b"timestamp_ms,open,high,low,close,volume\n0,1,1,1,1,1\n3600000,1,1\n7200000,1,1,1,1,1,9,9\n",
         "cannot read it: Error tokenizing data"),
        (b"\xff\xfe\x00garbage\x00\n\x81\x82", "cannot read it"),
    ],
)  # fmt: skip
def test_empty_and_unreadable_files_are_refused(tmp_path: Path, content, message):
    path = tmp_path / "XUSDT.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        read_bars(path, "1h")


def test_not_a_parquet_file_is_refused(tmp_path: Path):
    path = tmp_path / "XUSDT.parquet"
    path.write_text("timestamp_ms,open\n")
    with pytest.raises(DataError, match=f"{path}: cannot read it"):
        read_bars(path, "1h")


def test_missing_turnover_is_accepted_and_weekly_bars_start_on_monday(tmp_path: Path):
    path = tmp_path / "XUSDT.csv"
    frame().assign(turnover=[1.0, np.nan, 2.0, 3.0, 4.0]).to_csv(path, index=False)
    bars = read_bars(path, "1h")
    assert bars["start"].dtype == np.int64 and np.isnan(bars["turnover"][1])
    monday = 4 * 86_400_000  # 1970-01-05
    weekly = frame(3).assign(timestamp_ms=monday + 7 * 86_400_000 * np.arange(3))
    weekly.to_csv(path, index=False)
    assert read_bars(path, "1w")["start"].tolist() == weekly.timestamp_ms.tolist()
    weekly.assign(timestamp_ms=weekly.timestamp_ms - monday).to_csv(path, index=False)
    with pytest.raises(DataError, match="row 0: start 0 is not on the 604800000 ms grid"):
        read_bars(path, "1w")


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


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("0,0.0001\n28800000,nan\n", "row 1: funding rate nan is not a finite number"),
        ("0,0.0001\n28800000,inf\n", "row 1: funding rate inf is not a finite number"),
        ("0,0.0001\n,0.0001\n", "row 1: missing time"),
        ("0,0.0001\n28800000.5,0.0001\n", "row 1: time 28800000.5 is not a whole number"),
        ("0,high\n", "row 0: funding_rate 'high' is not a number"),
    ],
)
def test_bad_funding_files_are_refused_naming_the_file(tmp_path: Path, rows, message):
    (tmp_path / "funding-8h").mkdir()
    path = tmp_path / "funding-8h" / "AAAUSDT.csv"
    path.write_text("timestamp_ms,funding_rate\n" + rows)
    with pytest.raises(DataError, match=f"{path}: {message}"):
        load_funding(tmp_path, ("AAAUSDT",))
