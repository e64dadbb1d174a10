"""``bot data export``: the store's bars and funding as Parquet that ``--source parquet``
replays, value for value the same backtest as the CSV files they were imported from."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.runner import run_backtest
from bot.cli import data_cmd
from bot.cli.main import main
from bot.config import load_settings
from bot.feeds.loaders import load_funding, read_funding
from bot.store import Store
from tests.conftest import ROOT

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
BAR_SCHEMA = pa.schema([("timestamp_ms", pa.int64())] + [
    (name, pa.float64()) for name in ("open", "high", "low", "close", "volume")
])  # fmt: skip


def frame(starts: list[int], close: float = 1.0) -> pd.DataFrame:
    ones = np.ones(len(starts))
    return pd.DataFrame({"start": starts, "open": ones, "high": ones * close * 2, "low": ones / 2,
                         "close": ones * close, "volume": ones})  # fmt: skip


def export(url: str, out: Path, *flags: str) -> int:
    return main(["--config", str(ROOT / "config.toml"), "data", "export", "--out", str(out),
                 "--store", url, *flags])  # fmt: skip


def test_a_backtest_of_the_export_equals_the_backtest_of_the_csv_files(linear_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    files = [str(linear_dir / "1h" / f"{symbol}.csv") for symbol in SYMBOLS]
    assert main(["data", "import", *files, "--interval", "1h", "--store", url]) == 0
    with Store(url) as store:
        for symbol in SYMBOLS:
            times, rates = read_funding(linear_dir / "funding-8h" / f"{symbol}.csv")
            store.upsert_funding(symbol, times.tolist(), rates.tolist())
    out = tmp_path / "parquet"
    assert export(url, out) == 0

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        ["1h", "funding-8h"]
        + [f"1h/{s}.parquet" for s in SYMBOLS]
        + [f"funding-8h/{s}.parquet" for s in SYMBOLS]
    )
    bars = pq.read_table(out / "1h" / "BTCUSDT.parquet")
    assert bars.schema.equals(BAR_SCHEMA)  # no all-unknown turnover column
    csv = pd.read_csv(linear_dir / "1h" / "BTCUSDT.csv")
    assert np.array_equal(bars["timestamp_ms"].to_numpy(), csv["timestamp_ms"].to_numpy())
    assert np.array_equal(bars["close"].to_numpy(), csv["close"].to_numpy(np.float64))

    base = {
        "engine.symbols": SYMBOLS, "engine.start": "2024-03-01", "engine.end": "2024-05-01",
        "strategies": [{"name": "momentum", "params": {"lookback": 168, "top": 1}}],
    }  # fmt: skip
    from_csv = run_backtest(load_settings(ROOT / "config.toml", {**base,
                            "data.source": "csv", "data.path": str(linear_dir)}))  # fmt: skip
    from_parquet = run_backtest(load_settings(ROOT / "config.toml", {**base,
                                "data.source": "parquet", "data.path": str(out)}))  # fmt: skip
    assert from_csv.stats.funding_events > 0 and from_csv.stats.fills > 0
    assert from_parquet.equity.tobytes() == from_csv.equity.tobytes()
    assert from_parquet.times.tobytes() == from_csv.times.tobytes()
    assert from_parquet.stats.funding == from_csv.stats.funding


def test_the_flags_choose_what_is_exported(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    hour = 3_600_000
    with Store(url) as store:
        store.upsert_klines("AAAUSDT", "1h", frame([k * hour for k in range(48)]))
        store.upsert_klines("BBBUSDT", "1h", frame([k * hour for k in range(48)]))
        store.upsert_klines("AAAUSDT", "1d", frame([0, 24 * hour]))
        store.upsert_funding("AAAUSDT", [0, 8 * hour, 16 * hour, 40 * hour], [1e-4] * 4)
    out = tmp_path / "out"
    flags = ["--symbols", "aaausdt", "--interval", "60", "--start", "1970-01-01T10:00",
             "--end", str(30 * hour)]  # fmt: skip
    assert export(url, out, *flags) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet")) == [
        "1h/AAAUSDT.parquet", "funding-8h/AAAUSDT.parquet",
    ]  # fmt: skip
    starts = pq.read_table(out / "1h" / "AAAUSDT.parquet")["timestamp_ms"].to_pylist()
    assert starts == [k * hour for k in range(10, 30)]
    assert load_funding(out, ("AAAUSDT", "BBBUSDT"))["AAAUSDT"][0].tolist() == [16 * hour]
    assert "AAAUSDT  1h        20" in capsys.readouterr().out


def test_a_re_export_replaces_each_file_whole_and_a_failed_one_leaves_the_old(
    tmp_path, monkeypatch
):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    hour = 3_600_000
    with Store(url) as store:
        store.upsert_klines("AAAUSDT", "1h", frame([k * hour for k in range(10)]))
    out = tmp_path / "out"
    path = out / "1h" / "AAAUSDT.parquet"
    assert export(url, out, "--end", str(5 * hour)) == 0
    assert pq.read_table(path).num_rows == 5
    assert export(url, out) == 0
    assert pq.read_table(path).num_rows == 10

    def fail_midway(data: pa.Table, where: str) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(data_cmd.pq, "write_table", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        data_cmd.write_atomically(pa.table({"timestamp_ms": [0]}), path)
    assert pq.read_table(path).num_rows == 10
    assert sorted(p.name for p in path.parent.iterdir()) == ["AAAUSDT.parquet"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--symbols", "AAAUSDT,ZZZUSDT"], "the store holds no bars for ZZZUSDT; see `bot data"),
        (["--interval", "4h"], "the store holds no 4h bars; see `bot data list`"),
        (["--start", "soon"], "--start 'soon': not a date, ISO time or epoch ms"),
    ],
)
def test_what_cannot_be_exported_is_named(flags, message, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    with Store(url) as store:
        store.upsert_klines("AAAUSDT", "1h", frame([0, 3_600_000]))
    assert export(url, tmp_path / "out", *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_bar_the_replay_would_refuse_is_not_exported(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    with Store(url) as store:  # the store itself does not judge bars
        store.upsert_klines("AAAUSDT", "1h", frame([0, 3_600_000], close=np.inf))
    assert export(url, tmp_path / "out") == 2
    assert "the store's AAAUSDT 1h bars: row 0: non-finite" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
