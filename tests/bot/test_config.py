"""Bad config exits with one line naming the key; good config loads into typed settings."""

import tomllib
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import ConfigError, load_settings, redacted
from tests.conftest import ROOT

SHIPPED = ROOT / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text()
    assert old in text
    return write(tmp_path, text.replace(old, new, 1))


def test_the_shipped_config_is_valid():
    settings = load_settings(SHIPPED)
    assert settings.engine.interval == "1h"
    assert settings.portfolio.fee_bp == 5.5
    assert set(settings.engine.symbols) <= set(settings.instruments)
    assert Path(settings.data.path).is_absolute()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("fee_bp = 5.5", "fee_bps = 5.5",
         "unknown key 'portfolio.fee_bps' (did you mean 'fee_bp'?)"),
        ("fee_bp = 5.5", 'fee_bp = "cheap"', "portfolio.fee_bp: Input should be a valid number"),
        ("[risk]", "[riks]", "unknown key 'riks' (did you mean 'risk'?)"),
        ("max_drawdown = 0.5", "max_drawdown = 1.5", "risk.max_drawdown: Input should be less"),
        ('interval = "1h"', 'interval = "1hour"', "engine.interval: unknown interval '1hour'"),
        ('equity_snapshot = "every 1h"', 'equity_snapshot = "hourly"',
         "scheduler.equity_snapshot: schedule 'hourly'"),
        ("qty_step = 0.001\n", "qty_stp = 0.001\n",
         "unknown key 'instruments.BTCUSDT.qty_stp' (did you mean 'qty_step'?)"),
        ('name = "equal_weight"', 'nme = "equal_weight"', "unknown key 'strategies.0.nme'"),
        ('start = "2024-02-01"', 'start = "2024-02-31"', "engine.start: day is out of range"),
        ("seed = 7\n", 'seed = 7\nend = "soon"\n', "exchange.end: Invalid isoformat"),
    ],
)  # fmt: skip
def test_bad_keys_and_values_are_named_in_one_line(tmp_path, old, new, message):
    path = shipped_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith(str(path))


def test_a_symbol_without_instrument_rules_is_named(tmp_path):
    path = shipped_with(tmp_path, '"WIFUSDT"]', '"WIFUSDT", "PEPEUSDT"]')
    with pytest.raises(ConfigError, match=r"instruments.PEPEUSDT: no instrument spec"):
        load_settings(path)


def test_cli_exits_2_with_the_message_on_stderr(tmp_path, capsys):
    path = shipped_with(tmp_path, "fee_bp = 5.5", "fee_bps = 5.5")
    assert main(["--config", str(path), "backtest", "--no-store"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'portfolio.fee_bps'" in err[0]


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path, "[engine\nsymbols = 1"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_store_url_from_environment_and_password_never_in_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT_STORE_URL", "postgresql+psycopg://bot:s3cret@db.example/bot")
    settings = load_settings(SHIPPED)
    assert settings.store.url.endswith("bot:s3cret@db.example/bot")
    snapshot = redacted(settings)
    assert "s3cret" not in str(snapshot)
    assert snapshot["store"]["url"] == "postgresql+psycopg://bot:***@db.example/bot"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    data = tomllib.loads(SHIPPED.read_text())
    assert data["data"]["path"] == "../shared/data/bybit-linear"
    nested = tmp_path / "deploy"
    nested.mkdir()
    path = write(nested, SHIPPED.read_text())
    settings = load_settings(path)
    assert settings.data.path == str((tmp_path / "shared/data/bybit-linear").resolve())
    assert settings.store.url == f"sqlite:///{nested / 'bot.db'}"
