"""``config.toml`` → typed, validated settings.

Every section forbids unknown keys: a typo such as ``fee_bps`` is an error naming the key (with
a suggestion), never a silently ignored line that leaves a default in force with real money.
Secrets do not belong here: API keys and database passwords come from the environment
(``BOT_STORE_URL`` overrides ``store.url``), and :func:`redacted` strips passwords from the
snapshot stored with each run.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.core.scheduler import parse_trigger
from bot.core.timeutil import DAY_MS, normalize_interval, to_ms
from bot.redact import redact_data, redact_url, register_url_secrets


class ConfigError(ValueError):
    """A configuration problem, phrased as one line that names the offending key."""


def _check_time(value: str | None) -> str | None:
    if value is not None:
        to_ms(value)  # raises ValueError with the offending text
    return value


#: A time as people write it in config ("2024-02-01", ISO time, epoch ms), checked on load.
TimeText = Annotated[str | None, AfterValidator(_check_time)]


def has_non_finite(value: Any) -> bool:
    """Whether NaN or an infinity hides anywhere in free-form data (a number, list or table).

    TOML reads ``inf``, ``nan`` and ``1e400`` as floats; in a strategy parameter or a
    hyperparameter such a value is never meant and crashes far from where it was written."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_non_finite(v) for v in value)
    return False


def _finite_data(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Input should be a finite number")
    if has_non_finite(value):
        raise ValueError("Input should hold only finite numbers")
    return value


#: A free-form value (strategy parameter, hyperparameter) without NaN or infinities inside.
FiniteData = Annotated[Any, AfterValidator(_finite_data)]

#: Bybit's highest leverage: a weight, gross exposure or allocation beyond it cannot be traded.
MAX_LEVERAGE = 100.0
#: Far above any account, and low enough that cash in 1e-8 USDT units fits in an int64.
MAX_CASH = 1e10
#: numpy and torch take seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
#: Longest a network wait may be configured to last (seconds).
MAX_WAIT_S = 3600.0


class _Section(BaseModel):
    # allow_inf_nan=False: ``initial_cash = inf`` or ``--cash nan`` is an error naming the key,
    # not a run whose every number turns to NaN.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EngineConfig(_Section):
    symbols: list[str] = Field(min_length=1)
    interval: str = "1h"
    start: TimeText = None  # first bar start (date or ISO time, UTC), inclusive
    end: TimeText = None  # exclusive
    block_rows: int = Field(8192, ge=1, le=1_000_000)
    grace_ms: int = Field(5_000, ge=0, le=DAY_MS)  # longer, and a late symbol stalls the day

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not symbol.isalnum() or symbol.upper() != symbol:
                raise ValueError(f"symbol {symbol!r} must be upper-case letters and digits")
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return normalize_interval(value)

    @property
    def start_ms(self) -> int | None:
        return None if self.start is None else to_ms(self.start)

    @property
    def end_ms(self) -> int | None:
        return None if self.end is None else to_ms(self.end)


class DataConfig(_Section):
    source: Literal["csv", "parquet", "store", "synthetic"] = "csv"
    path: str = "../shared/data/bybit-linear"  # relative paths: relative to the config file
    funding: bool = True  # apply funding from <path>/funding-8h/<SYMBOL>.csv when present
    synthetic_bars: int = Field(10_000, ge=1, le=50_000_000)  # ~95 years of 1m bars
    synthetic_seed: int = Field(7, ge=0, le=MAX_SEED)


class PortfolioConfig(_Section):
    initial_cash: float = Field(100_000.0, gt=0, le=MAX_CASH)
    fee_bp: float = Field(5.5, ge=0, le=1_000)
    slippage_bp: float = Field(1.0, ge=0, le=1_000)
    rebalance_threshold: float = Field(0.01, ge=0, le=1)


class RiskConfig(_Section):
    max_weight: float = Field(1.0, gt=0, le=MAX_LEVERAGE)
    max_gross: float = Field(1.0, gt=0, le=MAX_LEVERAGE)
    max_drawdown: float | None = Field(0.5, gt=0, le=1)
    allow_short: bool = False


class SchedulerConfig(_Section):
    equity_snapshot: str = "every 1h"  # '' disables a job
    daily_summary: str = "cron 0 0 * * *"

    @field_validator("equity_snapshot", "daily_summary")
    @classmethod
    def _trigger(cls, value: str) -> str:
        if value:
            parse_trigger(value)
        return value


#: Database backends the store supports (SQLAlchemy driver names start with one of these).
STORE_BACKENDS = ("sqlite", "postgresql")


def check_store_url(url: str) -> str:
    """Refuse a store URL that SQLAlchemy cannot parse or whose backend the store does not run
    on, before anything tries to open it. The message never repeats the URL (it may hold a
    password): callers show it redacted."""
    try:
        drivername = make_url(url).drivername
    except (ArgumentError, ValueError):
        raise ValueError(
            "not a database URL (expected e.g. sqlite:///bot.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    if not drivername.startswith(STORE_BACKENDS):
        raise ValueError(
            f"unsupported database {drivername!r}: the store runs on SQLite (sqlite:///FILE) "
            "or PostgreSQL (postgresql+psycopg://user@host/db)"
        )
    return url


class StoreConfig(_Section):
    url: str = "sqlite:///bot.db"
    # how long writes keep retrying a database locked by another process, then give up
    lock_timeout_s: float = Field(60.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_store_url(value)


class VenueConfig(_Section):
    """Where live market data comes from: Bybit itself, or the local Bybit-compatible exchange
    (``target = "local"``, which uses ``[exchange]``'s host and port)."""

    target: Literal["bybit", "local"] = "bybit"
    rest_url: str = "https://api.bybit.com"
    ws_url: str = "wss://stream.bybit.com/v5/public/linear"
    category: Literal["linear", "inverse", "spot"] = "linear"
    request_timeout_s: float = Field(10.0, gt=0, le=MAX_WAIT_S)
    max_retries: int = Field(6, ge=0, le=100)  # beyond: ~an hour of retries, a hang
    ping_interval_s: float = Field(20.0, gt=0, lt=600)  # Bybit cuts silent connections at 10 min
    pong_timeout_s: float = Field(10.0, gt=0, le=MAX_WAIT_S)
    reconnect_initial_s: float = Field(0.5, gt=0, le=MAX_WAIT_S)
    reconnect_max_s: float = Field(30.0, gt=0, le=MAX_WAIT_S)
    orderbook_depth: Literal[0, 1, 50, 200, 500, 1000] = 0  # 0: no order book stream
    # REST catch-up this often: closed bars the stream missed, and the websocket's closes
    # compared with the venue's REST record (a contradicted one is corrected)
    catchup_s: float = Field(30.0, gt=0, le=3600)


class ModelsConfig(_Section):
    """How the models compute in every command that runs one (backtest, paper, live, train,
    demo, explain)."""

    # torch's intra-op CPU threads; 0: automatic (see torch_threads)
    threads: int = Field(0, ge=0, le=1024)

    def torch_threads(self, cpus: int | None = None) -> int:
        """The thread count to give torch: ``threads``, or automatically one on a machine of
        up to four cores, else half the cores (at most eight).

        A decision is one small forward pass. Its threads wait for each other at every
        operator, and on a small machine shared with other work (the daemon's own event loop,
        a backtest next to it) a waiting thread is often descheduled: two threads on a busy
        two-core machine ran up to 75 times slower than one."""
        if self.threads:
            return self.threads
        cpus = cpus or os.cpu_count() or 1
        return 1 if cpus <= 4 else min(cpus // 2, 8)


class PaperConfig(_Section):
    heartbeat_s: float = Field(60.0, gt=0, le=DAY_MS / 1000)  # a status line this often
    until: TimeText = None  # stop after the step closing at this time (tests, demos)
    # a daemon claims its run for this long and renews the claim every third of it; a
    # crashed daemon's claim lapses after it (one on this machine is known dead at once)
    lease_ttl_s: float = Field(30.0, ge=3, le=3600)


class LogConfig(_Section):
    """Where a daemon's routine log goes: its terminal shows only what a user acts on (see
    :mod:`bot.logs`); everything else is kept in this file, rotated so months fit."""

    file: str = "logs/bot.log"  # relative to the config file; '' keeps none (then -v shows them)
    max_mb: float = Field(20.0, gt=0, le=10_000)  # rotate at this size ...
    keep: int = Field(5, ge=1, le=1_000)  # ... keeping this many old files


class MonitoringConfig(_Section):
    """``/metrics`` (Prometheus) and ``/healthz`` of a running daemon (``bot paper``, ``bot
    live``, ``bot demo``), served on its event loop (see :mod:`bot.monitoring`)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", min_length=1)  # 0.0.0.0 exposes it to the network
    # unset: any free port (the daemon logs the URL); a fixed one is what Prometheus scrapes,
    # and two daemons need two
    port: int = Field(0, ge=0, le=65535)
    # /healthz fails when no step came for the interval (over the local exchange's speed) +
    # engine.grace_ms + this many seconds
    step_slack_s: float = Field(30.0, ge=0, le=MAX_WAIT_S)


class FaultsConfig(_Section):
    """Faults the local exchange injects, deterministically under its seed."""

    drop_every: int = Field(0, ge=0)  # close a websocket after every N messages (0: never)
    drop_probability: float = Field(0.0, ge=0, le=1)  # ... or with this chance per message
    duplicate_probability: float = Field(0.0, ge=0, le=1)
    reorder_window: int = Field(0, ge=0)  # shuffle messages within windows of this many
    delay_ms: int = Field(0, ge=0)  # hold each message back up to this long (wall ms)
    malformed_probability: float = Field(0.0, ge=0, le=1)  # send broken JSON instead
    outage_at: TimeText = None  # market time the websocket service goes down
    outage_bars: int = Field(0, ge=0)  # ... for this many bars of market time
    rate_limit_every: int = Field(0, ge=0)  # REST: every Nth request answers 10006
    rate_limit_reset_ms: int = Field(300, ge=0)  # ... with a reset this far ahead (wall ms)
    http_error_every: int = Field(0, ge=0)  # REST: every Nth request is an HTTP 403


class PrivateFaultsConfig(_Section):
    """Faults of the local exchange's private side (orders, lookups, private stream), each a
    chance decided under ``exchange.seed`` per order request, private request, message,
    connection or bar, and counted in ``/_local/status``. All off by default."""

    # order create: accepted, then the connection is dropped before any answer
    lost_response_probability: float = Field(0.0, ge=0, le=1)
    # order create: the connection is dropped, the order is accepted (and visible to lookups)
    # only late_acceptance_ms later; its orderLinkId is taken at once (a re-send gets 110072)
    late_acceptance_probability: float = Field(0.0, ge=0, le=1)
    late_acceptance_ms: int = Field(2_000, ge=0, le=600_000)  # wall ms
    # any private request: a burst of this many 10006 answers begins
    rate_limit_burst_probability: float = Field(0.0, ge=0, le=1)
    rate_limit_burst_requests: int = Field(3, ge=1, le=1_000)
    rate_limit_reset_ms: int = Field(300, ge=0, le=60_000)  # reset this far ahead (wall ms)
    # any private request: the server clock runs clock_skew_ms ahead, so a timestamp older
    # than the request's recv window then gets 10002
    clock_skew_probability: float = Field(0.0, ge=0, le=1)
    clock_skew_ms: int = Field(6_000, ge=1, le=3_600_000)
    # order create/cancel: retCode 10016 or HTTP 5xx, before the order is touched / after
    error_before_probability: float = Field(0.0, ge=0, le=1)
    error_after_probability: float = Field(0.0, ge=0, le=1)
    # order create: acknowledged, then Rejected on the order stream
    async_reject_probability: float = Field(0.0, ge=0, le=1)
    # order create: partly filled, the rest cancelled (IOC leftovers, market orders too)
    ioc_partial_probability: float = Field(0.0, ge=0, le=1)
    # order create: stays New, filled fill_delay_ms later (wall) at the price of then
    delayed_fill_probability: float = Field(0.0, ge=0, le=1)
    fill_delay_ms: int = Field(500, ge=0, le=600_000)
    # private websocket, per data message: lost, sent twice, sent after the next one
    ws_drop_probability: float = Field(0.0, ge=0, le=1)
    ws_duplicate_probability: float = Field(0.0, ge=0, le=1)
    ws_reorder_probability: float = Field(0.0, ge=0, le=1)
    # private websocket, per Filled order message: a second Filled message follows
    ws_double_filled_probability: float = Field(0.0, ge=0, le=1)
    # private websocket, per data message: the connection is cut right after it (no close
    # frame); what was still queued is lost
    ws_disconnect_probability: float = Field(0.0, ge=0, le=1)
    # private websocket, per auth request with a valid signature: answered as a failure
    auth_failure_probability: float = Field(0.0, ge=0, le=1)
    # per account and bar: a manual market order (not the client's) on a symbol it traded
    manual_order_probability: float = Field(0.0, ge=0, le=1)
    manual_order_notional: float = Field(100.0, gt=0, le=MAX_CASH)  # USDT
    # order create: refused as if the rule were broken (110007 / 110094 / 110017)
    insufficient_balance_probability: float = Field(0.0, ge=0, le=1)
    below_min_notional_probability: float = Field(0.0, ge=0, le=1)
    qty_to_zero_probability: float = Field(0.0, ge=0, le=1)


class ExchangeAccountConfig(_Section):
    """An account of the local exchange: an API key pair (test keys, never real ones) and what
    Bybit would report about it, so the bot's refusals (read-only key, withdraw permission, no
    unified account, hedge mode) can be tested. ``name`` identifies it in ``/_local/status``."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    api_key: SecretStr
    api_secret: SecretStr
    balance: float = Field(10_000.0, ge=0, le=MAX_CASH)  # starting USDT wallet balance
    leverage: float = Field(10.0, ge=1, le=MAX_LEVERAGE)  # initial margin = value / leverage
    read_only: bool = False  # orders and cancels answer 10005
    withdraw: bool = False  # the key also holds the Wallet "Withdraw" permission
    uta: bool = True  # a unified trading account (wallet-balance accountType=UNIFIED works)
    position_mode: Literal["one_way", "hedge"] = "one_way"

    @field_validator("api_key", "api_secret")
    @classmethod
    def _present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value


class ExchangeConfig(_Section):
    """The local Bybit-compatible exchange (``bot exchange``): replays bars as live klines,
    and trades the ``accounts`` on its private side."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    speed: float = Field(3600.0, gt=0)  # market seconds per wall second
    start: TimeText = None  # market time when the exchange starts (default: data start)
    # when market time starts running: at the first websocket subscription (so a client's
    # start-up time, however slow the machine, costs it no bars), or as soon as it serves
    start_on: Literal["subscription", "serve"] = "subscription"
    max_connections: int = Field(500, ge=1)  # websocket connections at once; more are refused
    end: TimeText = None  # no new bars after this market time
    seed: int = 7
    bar_updates: int = Field(3, ge=1, le=60)  # confirm:false pushes per candle before it closes
    source: Literal["csv", "store", "synthetic"] = "csv"  # csv uses [data].path
    faults: FaultsConfig = FaultsConfig()
    accounts: list[ExchangeAccountConfig] = Field(default_factory=list)
    taker_fee: float = Field(0.00055, ge=0, le=0.01)  # fee rate of every fill (5.5 bp)
    order_rate_limit: int = Field(10, ge=1, le=10_000)  # creates + cancels per second, account
    private_faults: PrivateFaultsConfig = PrivateFaultsConfig()

    @model_validator(mode="after")
    def _distinct_accounts(self) -> ExchangeConfig:
        names = [a.name for a in self.accounts]
        keys = [a.api_key.get_secret_value() for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("accounts: two accounts share a name")
        if len(set(keys)) != len(keys):
            raise ValueError("accounts: two accounts share an api_key")
        return self


#: What ``--mainnet`` must be given (on top of ``--confirm``) before real money is traded
#: without ``live.allow_mainnet`` in the config.
MAINNET_TOKEN = "I-UNDERSTAND"
#: Names a setting may not have in ``[live]``: credentials come from the environment only.
_CREDENTIAL_WORDS = ("key", "secret", "password", "token", "passphrase")


class LiveConfig(_Section):
    """``bot live``: which Bybit account it trades, where its keys come from, and the hard
    limits every order is checked against before it is sent.

    The keys themselves are never configured here (the file may be committed, copied into a
    report or stored with the run); ``key_env`` and ``secret_env`` only *name* the environment
    variables that hold them."""

    target: Literal["mainnet", "testnet", "demo", "local"] = "testnet"
    # mainnet also needs this (or ``--mainnet I-UNDERSTAND``) besides ``--confirm``
    allow_mainnet: bool = False
    key_env: str = "BYBIT_API_KEY"
    secret_env: str = "BYBIT_API_SECRET"
    # rails, in USDT; unset: derived from portfolio.initial_cash and risk.max_weight (set them
    # for a long run: they do not grow with the account)
    max_order_notional: float | None = Field(None, gt=0, le=MAX_CASH)
    max_position_notional: float | None = Field(None, gt=0, le=MAX_CASH)
    max_orders_per_minute: int = Field(60, ge=1, le=600)  # Bybit allows 10 per second
    # an order of unknown outcome may be sent again (same orderLinkId) only this soon after the
    # first attempt; later, the symbol stays blocked until the exchange says what happened
    resend_window_s: float = Field(10.0, ge=0, le=MAX_WAIT_S)
    # how long a sent order may stay silent on the private stream before it is looked up
    settle_timeout_s: float = Field(5.0, gt=0, le=MAX_WAIT_S)
    # positions and wallet compared with the exchange's this often
    reconcile_interval_s: float = Field(60.0, gt=0, le=MAX_WAIT_S)

    @field_validator("key_env", "secret_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,127}", value):
            raise ValueError(
                "must be the name of an environment variable (upper-case letters, digits and "
                "_), not the key itself"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            named = sorted(
                k for k in data
                if isinstance(k, str) and k not in cls.model_fields
                and any(w in k.lower() for w in _CREDENTIAL_WORDS)
            )  # fmt: skip
            if named:
                raise ValueError(
                    f"'{named[0]}' does not belong in a config file: API keys and secrets are "
                    "read from the environment only (live.key_env and live.secret_env name "
                    "the variables; BYBIT_API_KEY and BYBIT_API_SECRET by default)"
                )
        return data


class StrategyConfig(_Section):
    name: str
    allocation: float = Field(1.0, gt=0, le=MAX_LEVERAGE)
    symbols: list[str] | None = None  # default: all of engine.symbols
    params: dict[str, FiniteData] = Field(default_factory=dict)


class InstrumentConfig(_Section):
    qty_step: float = Field(gt=0)
    min_order_qty: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)
    tick_size: float = Field(0.0, ge=0)


class TrainSettings(_Section):
    """``bot train``: what to learn from and how (the data window is the [engine] one).

    The per-model tables hold hyperparameters (defaults: the chapters' sizes), checked against
    the model's own when training starts."""

    features: list[str] | None = None  # default: the chapter's six (see models.features)
    horizon: int = Field(1, ge=1)  # targets: log return this many bars ahead
    horizons: list[int] = Field([1, 4, 24], min_length=1)  # multi-scale short/medium/long bars
    rebalance: str = "bar"  # decisions (samples) at each bar or each period start ("1h")
    val_fraction: float = Field(0.2, gt=0, lt=1)  # the latest rows validate (early stopping)
    out_dir: str = "checkpoints"  # relative to the config file
    epochs: int | None = Field(None, ge=1)  # None: the chapter recipe's
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=1)
    seed: int = Field(7, ge=0, le=MAX_SEED)
    device: str = "auto"  # auto: CUDA when available
    threads: int = Field(0, ge=0, le=1024)  # torch's CPU threads to train; 0: [models] threads
    cross_asset: dict[str, FiniteData] = Field(default_factory=dict)
    stockformer: dict[str, FiniteData] = Field(default_factory=dict)
    multiscale: dict[str, FiniteData] = Field(default_factory=dict)
    tabl: dict[str, FiniteData] = Field(default_factory=dict)

    @field_validator("horizons")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if min(value) < 1:
            raise ValueError("horizons must be positive bar counts")
        return value

    @field_validator("rebalance")
    @classmethod
    def _period(cls, value: str) -> str:
        return value if value == "bar" else normalize_interval(value)


class Settings(_Section):
    engine: EngineConfig
    data: DataConfig = DataConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    risk: RiskConfig = RiskConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    store: StoreConfig = StoreConfig()
    venue: VenueConfig = VenueConfig()
    paper: PaperConfig = PaperConfig()
    log: LogConfig = LogConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    models: ModelsConfig = ModelsConfig()
    exchange: ExchangeConfig = ExchangeConfig()
    live: LiveConfig = LiveConfig()
    strategies: list[StrategyConfig] = Field(min_length=1)
    instruments: dict[str, InstrumentConfig] = Field(default_factory=dict)
    train: TrainSettings = TrainSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for symbol in self.engine.symbols:
            if symbol not in self.instruments:
                raise ValueError(
                    f"instruments.{symbol}: no instrument spec for {symbol} "
                    f"(add a [instruments.{symbol}] table with qty_step, min_order_qty, ...)"
                )
        for k, strategy in enumerate(self.strategies):
            extra = set(strategy.symbols or ()) - set(self.engine.symbols)
            if extra:
                raise ValueError(f"strategies.{k}.symbols: {sorted(extra)} not in engine.symbols")
        return self

    def strategy_symbols(self, strategy: StrategyConfig) -> list[str]:
        return list(strategy.symbols or self.engine.symbols)

    def venue_urls(self) -> tuple[str, str]:
        """(REST base URL, public websocket URL) of the configured venue."""
        if self.venue.target == "local":
            base = f"{self.exchange.host}:{self.exchange.port}"
            return f"http://{base}", f"ws://{base}/v5/public/{self.venue.category}"
        return self.venue.rest_url, self.venue.ws_url


# -- loading ---------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X`` (the member that can hold keys)."""
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _model_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (to suggest the right spelling).

    Walks the settings' annotations along ``loc``, stepping over list indices and dict keys
    (``strategies.0.nme``, ``instruments.BTCUSDT.qty_stp``)."""
    annotation: Any = Settings
    for part in loc[:-1]:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]  # the element / value type
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


#: Keys whose values may hold a secret: shown redacted in messages.
_SECRET_KEYS = ("store.url",)


def _origin(key: str, flags: Mapping[str, str]) -> str | None:
    """The flag (or environment variable) that set ``key`` or the table holding it."""
    owners = [k for k in flags if key == k or key.startswith(f"{k}.")]
    return flags[max(owners, key=len)] if owners else None


#: Settings whose rejected value is not echoed: a key pasted where its variable's name belongs
#: must not end up on the terminal or in a log.
_UNSHOWN_KEYS = ("live.key_env", "live.secret_env")


def _shown(key: str, got: Any) -> str:
    if isinstance(got, dict | list) or key in _UNSHOWN_KEYS:
        return ""
    if key in _SECRET_KEYS and isinstance(got, str):
        return f" (got {redact_url(got)!r})"
    return f" (got {got!r})"


def _describe(error: dict[str, Any], source: str, flags: Mapping[str, str]) -> str:
    loc = tuple(error.get("loc", ()))
    key = ".".join(str(p) for p in loc)
    if error.get("type") == "extra_forbidden":
        model = _model_for(loc)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{source}: unknown key '{key}'{hint}"
    if error.get("type") == "missing":
        return f"{source}: missing required key '{key}'"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not key:
        return f"{source}: {message}"
    shown = _shown(key, error.get("input"))
    flag = _origin(key, flags)
    if flag is not None:  # the file is not at fault: name what the user typed
        return f"{flag} ({key}): {message}{shown}"
    return f"{source}: {key}: {message}{shown}"


def parse_settings(
    data: dict[str, Any], source: str = "config", flags: Mapping[str, str] | None = None
) -> Settings:
    """Validate a config mapping; raises :class:`ConfigError` with a one-line message.

    ``flags`` maps dotted keys (or tables) set from outside ``source`` to what set them
    (``{"portfolio.initial_cash": "--cash"}``), so their errors name the flag, not the file."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        # A misspelled key shows up twice (unknown + missing); the unknown one names the typo.
        errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise ConfigError(_describe(errors[0], source, flags or {}) + more) from None


def load_settings(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (TOML), apply the environment, then dotted-key ``overrides`` (from the
    CLI; ``flags`` names the flag behind each, see :func:`parse_settings`).

    A flag beats the environment as it beats the file: ``--store`` wins over BOT_STORE_URL."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    origins: dict[str, str] = {}
    if url := os.environ.get("BOT_STORE_URL"):
        set_dotted(data, "store.url", url)
        origins["store.url"] = "BOT_STORE_URL"
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
        origins.pop(dotted, None)
    origins.update(flags or {})
    settings = parse_settings(data, str(path), origins)
    return resolve_paths(settings, path.parent)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make relative data paths, SQLite files and the log file relative to the config file's
    folder."""
    data_path = Path(os.path.expandvars(settings.data.path)).expanduser()
    if not data_path.is_absolute():
        data_path = (base / data_path).resolve()
    out_dir = Path(os.path.expandvars(settings.train.out_dir)).expanduser()
    if not out_dir.is_absolute():
        out_dir = (base / out_dir).resolve()
    log_file = settings.log.file
    if log_file and not Path(os.path.expandvars(log_file)).expanduser().is_absolute():
        log_file = str((base / os.path.expandvars(log_file)).resolve())
    url = settings.store.url
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        db = Path(parsed.database).expanduser()
        if not db.is_absolute():
            url = parsed.set(database=str((base / db).resolve())).render_as_string(
                hide_password=False
            )
    return settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"path": str(data_path)}),
            "store": settings.store.model_copy(update={"url": url}),
            "train": settings.train.model_copy(update={"out_dir": str(out_dir)}),
            "log": settings.log.model_copy(update={"file": log_file}),
        }
    )


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data without credentials: the snapshot stored with each run, which
    ``bot runs show`` prints, must hold no password or key in any form.

    The URL-valued settings go through :func:`redact_url` (a userinfo password or bare token,
    ``?password=``, ``?api_key=``), every other string through :func:`redact_data` (a strategy
    parameter may hold a URL or a ``token``). Their secrets are registered for the log filter
    too, so a program that builds settings without the CLI still keeps them out of its logs."""
    urls = {"store": ["url"], "venue": ["rest_url", "ws_url"]}
    data = redact_data(settings.model_dump(mode="json"))
    for section, keys in urls.items():
        for key in keys:
            url = getattr(getattr(settings, section), key)
            register_url_secrets(url)
            data[section][key] = redact_url(url)
    return data
