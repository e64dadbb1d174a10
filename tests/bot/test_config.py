"""Bad config exits with one line naming the key; good config loads into typed settings."""

import tomllib
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import ConfigError, Settings, load_settings, redacted
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
        # non-finite numbers, in every section
        ("initial_cash = 100000.0", "initial_cash = inf",
         "portfolio.initial_cash: Input should be a finite number (got inf)"),
        ("fee_bp = 5.5", "fee_bp = nan", "portfolio.fee_bp: Input should be a finite number"),
        ("max_drawdown = 0.5", "max_drawdown = nan", "risk.max_drawdown: Input should be a finite"),
        ("request_timeout_s = 10.0", "request_timeout_s = inf",
         "venue.request_timeout_s: Input should be a finite number"),
        ("speed = 3600.0", "speed = inf", "exchange.speed: Input should be a finite number"),
        ("drop_probability = 0.0", "drop_probability = nan",
         "exchange.faults.drop_probability: Input should be a finite number"),
        ("qty_step = 0.001\n", "qty_step = inf\n",
         "instruments.BTCUSDT.qty_step: Input should be a finite number"),
        ("block_rows = 8192", "block_rows = inf", "engine.block_rows: Input should be a finite"),
        ("val_fraction = 0.2", "val_fraction = nan", "train.val_fraction: Input should be a fin"),
        ("allocation = 1.0", "allocation = -inf", "strategies.0.allocation: Input should be a fin"),
        # non-finite numbers inside free-form tables, the key named
        ('params = { rebalance = "1w" }', 'params = { rebalance = "1w", lookback = 1e400 }',
         "strategies.0.params.lookback: Input should be a finite number (got inf)"),
        ('params = { rebalance = "1w" }', "params = { weights = [0.5, nan] }",
         "strategies.0.params.weights: Input should hold only finite numbers"),
        ("d_model = 64", "d_model = inf",
         "train.cross_asset.d_model: Input should be a finite number (got inf)"),
        # absurd but finite values
        ("max_gross = 1.0", "max_gross = 1e300", "risk.max_gross: Input should be less than or "
         "equal to 100"),
        ("max_weight = 0.5", "max_weight = 101", "risk.max_weight: Input should be less than or "
         "equal to 100"),
        ("allocation = 1.0", "allocation = 1e300", "strategies.0.allocation: Input should be less"),
        ("initial_cash = 100000.0", "initial_cash = 1e300",
         "portfolio.initial_cash: Input should be less than or equal to 10000000000"),
        ("grace_ms = 5000", "grace_ms = 9223372036854775807", "engine.grace_ms: Input should be"),
        ('source = "csv"  ', 'source = "csv"\nsynthetic_bars = 1_000_000_000_000  ',
         "data.synthetic_bars: Input should be less than or equal to 50000000"),
        ('source = "csv"  ', 'source = "csv"\nsynthetic_seed = -1  ',
         "data.synthetic_seed: Input should be greater than or equal to 0"),
        ("max_retries = 6", "max_retries = 1000000", "venue.max_retries: Input should be less"),
        ("ping_interval_s = 20.0", "ping_interval_s = 900.0",
         "venue.ping_interval_s: Input should be less than 600"),
        ("heartbeat_s = 60.0", "heartbeat_s = 1e300", "paper.heartbeat_s: Input should be less"),
        ("threads = 0                 # torch CPU threads to", "threads = 1000000 #",
         "train.threads: Input should be less"),
        ("threads = 0                 # torch CPU threads (", "threads = -1 #",
         "models.threads: Input should be greater than or equal to 0"),
        ("seed = 7\ndevice", "seed = 4294967296\ndevice", "train.seed: Input should be less"),
        # the store: a URL SQLAlchemy can parse, of a backend the store runs on
        ('url = "sqlite:///bot.db"', 'url = "::nonsense"',
         "store.url: not a database URL (expected e.g. sqlite:///bot.db"),
        ('url = "sqlite:///bot.db"', 'url = "mysql://u@h/db"',
         "store.url: unsupported database 'mysql': the store runs on SQLite (sqlite:///FILE) "
         "or PostgreSQL (postgresql+psycopg://user@host/db) (got 'mysql://u@h/db')"),
        ('url = "sqlite:///bot.db"', 'url = "oracle+oracledb://scott:tiger@h/db"',
         "store.url: unsupported database 'oracle+oracledb'"),
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


def test_the_shipped_config_keeps_within_every_bound():
    """Re-validating the shipped values (as loaded, paths resolved) raises nothing."""
    settings = load_settings(SHIPPED)
    assert Settings.model_validate(settings.model_dump()) == settings


def test_store_url_errors_never_show_a_password(tmp_path):
    url = "mysql://bot:s3cret@h/db?password=s3cret&api_key=s3cret&charset=utf8"
    path = shipped_with(tmp_path, 'url = "sqlite:///bot.db"', f'url = "{url}"')
    with pytest.raises(ConfigError, match=r"store\.url: unsupported database 'mysql'") as caught:
        load_settings(path)
    assert str(caught.value).endswith(
        "(got 'mysql://bot:***@h/db?password=***&api_key=***&charset=utf8')"
    )


def test_the_environment_store_url_is_named_and_a_flag_beats_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT_STORE_URL", "mysql://bot:s3cret@db.example/bot")
    with pytest.raises(ConfigError) as caught:
        load_settings(SHIPPED)
    text = str(caught.value)
    assert text.startswith("BOT_STORE_URL (store.url): unsupported database 'mysql'")
    assert "s3cret" not in text
    url = f"sqlite:///{tmp_path / 'flag.db'}"
    settings = load_settings(SHIPPED, {"store.url": url}, {"store.url": "--store"})
    assert settings.store.url == url


def test_values_from_flags_are_named_by_the_flag(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(SHIPPED, {"portfolio.initial_cash": float("inf")},
                      {"portfolio.initial_cash": "--cash"})  # fmt: skip
    assert str(caught.value) == (
        "--cash (portfolio.initial_cash): Input should be a finite number (got inf)"
    )
    strategy = [{"name": "momentum", "params": {"lookback": float("nan")}}]
    with pytest.raises(ConfigError) as caught:
        load_settings(SHIPPED, {"strategies": strategy},
                      {"strategies": "--strategy", "strategies.0.params.lookback":
                       "--param lookback"})  # fmt: skip
    assert str(caught.value).startswith(
        "--param lookback (strategies.0.params.lookback): Input should be a finite number"
    )
    with pytest.raises(ConfigError, match=r"^/.*config.toml: risk.max_gross: Input should be"):
        path = shipped_with(tmp_path, "max_gross = 1.0", "max_gross = inf")
        load_settings(path, {"portfolio.initial_cash": 5.0}, {"portfolio.initial_cash": "--cash"})


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
