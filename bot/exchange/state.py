"""Everything one running local exchange shares between its handlers.

Besides the market and its clock: when the clock starts (``exchange.start_on``: at the first
subscription, or as soon as the server serves), the connection slots
(``exchange.max_connections``), the messages shared by all connections (:class:`Frames`), and
the private side — accounts, orders, private streams (:class:`PrivateExchange`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from bot.config import Settings
from bot.core.timeutil import iso, to_ms
from bot.exchange.clock import MarketClock, WallClock
from bot.exchange.faults import ConnectionFaults, FaultCounters, RestFaults, outage_window
from bot.exchange.frames import Frames
from bot.exchange.market import Market
from bot.exchange.private import PrivateExchange
from bot.exchange.tape import Tape

if TYPE_CHECKING:
    from bot.exchange.session import Session


@dataclass
class Stats:
    """Traffic served since start (for ``/_local/status``)."""

    rest_requests: int = 0
    kline_rows: int = 0
    klines_pushed: int = 0
    bars_confirmed: int = 0  # confirm:true pushes
    book_messages: int = 0
    books_computed: int = 0  # order books built (once per symbol, depth and update if shared)
    frames_encoded: int = 0  # data messages JSON-encoded (once, however many receive them)
    connections_total: int = 0
    connections_refused: int = 0  # upgrades refused at exchange.max_connections


@dataclass
class ExchangeState:
    settings: Settings
    market: Market
    clock: MarketClock
    counters: FaultCounters = field(default_factory=FaultCounters)
    stats: Stats = field(default_factory=Stats)
    sessions: set[Session] = field(default_factory=set)
    port: int | None = None  # bound port, known once serving
    connections_open: int = 0  # admitted websocket connections (handshaking ones included)

    def __post_init__(self) -> None:
        faults = self.settings.exchange.faults
        self.rest_faults = RestFaults(faults, self.counters)
        self.outage = outage_window(faults, self.market.interval_ms)
        self.frames = Frames(self.market, self.stats)
        self.private = PrivateExchange(self.settings, self.market, self.clock)

    @classmethod
    def build(cls, settings: Settings, tape: Tape, wall_clock: WallClock) -> ExchangeState:
        exchange = settings.exchange
        market = Market(tape, settings.instruments, exchange.seed, exchange.bar_updates)
        # The market starts at exchange.start, but never before the first bar.
        start = tape.first if exchange.start is None else max(to_ms(exchange.start), tape.first)
        return cls(settings, market, MarketClock(start, exchange.speed, wall_clock))

    def serving(self) -> None:
        """The server accepts connections: the market starts now unless it waits for its
        first subscriber."""
        if self.settings.exchange.start_on == "serve":
            self.clock.start()

    def subscribed(self) -> None:
        """A client subscribed to a stream: a market still waiting for one starts now."""
        self.clock.start()

    def admit(self) -> bool:
        """Take a connection slot, or count a refusal when all are taken."""
        if self.connections_open >= self.settings.exchange.max_connections:
            self.stats.connections_refused += 1
            return False
        self.connections_open += 1
        return True

    def release(self) -> None:
        """Give back the slot of a connection that ended."""
        self.connections_open -= 1

    def in_outage(self, now: int) -> bool:
        return self.outage is not None and self.outage[0] <= now < self.outage[1]

    def new_connection(self) -> tuple[int, ConnectionFaults]:
        """Number the next websocket connection (1, 2, …) and give it its fault plan."""
        self.stats.connections_total += 1
        number = self.stats.connections_total
        exchange = self.settings.exchange
        return number, ConnectionFaults(exchange.faults, exchange.seed, number)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        tape = self.market.tape
        return {
            "market_now": now,
            "market_now_iso": iso(now),
            "wall_now": self.clock.wall_ms(),
            "speed": self.clock.speed,
            "market_start": self.clock.start_ms,
            "start_on": self.settings.exchange.start_on,
            "held": self.clock.held,
            "paused": self.clock.paused,
            "interval": tape.interval,
            "symbols": list(tape.symbols),
            "tape_first": tape.first,
            "tape_end": tape.slot_start(tape.slots),
            "bars_closed": self.market.bars_closed(now),
            "update": self.market.update_at(now),
            "port": self.port,
            "connections": {
                "open": self.connections_open,
                "total": self.stats.connections_total,
                "refused": self.stats.connections_refused,
                "limit": self.settings.exchange.max_connections,
            },
            "outage": self.outage,
            "in_outage": self.in_outage(now),
            "served": asdict(self.stats),
            "faults": self.counters.as_dict(),
            "private": self.private.status(),
        }
