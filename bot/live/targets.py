"""Where ``bot live`` trades, whether it may, and the rails it trades within, from the settings.

Kept apart from the daemon so that every refusal here happens before a single private request
(the CLI calls these first), and so the same rules serve ``bot live`` and ``bot live --check``.
"""

from __future__ import annotations

from bot.config import MAINNET_TOKEN, ConfigError, Settings
from bot.live.rails import RailLimits
from bot.venues.bybit.credentials import Endpoints, endpoints

#: Rails left unset in ``[live]`` allow this multiple of the largest position a correct
#: strategy asks for at the run's starting capital: room for the account to grow somewhat,
#: none for a runaway order of ten times the account.
DEFAULT_RAIL_HEADROOM = 1.5


def check_mainnet_allowed(settings: Settings, token: str | None) -> None:
    """Refuse mainnet unless the config allows it or the command line says the token.

    ``--confirm`` says "send orders"; this says "with real money", on purpose a second,
    separate statement that a copied command line or a config written for testnet lacks."""
    if settings.live.target != "mainnet":
        if token is not None:
            raise ConfigError(
                f"--mainnet was given but live.target is {settings.live.target!r}, not "
                "'mainnet': nothing would use it (check which account you mean to trade)"
            )
        return
    if settings.live.allow_mainnet or token == MAINNET_TOKEN:
        return
    given = "" if token is None else " (--mainnet was given a different value)"
    raise ConfigError(
        "live.target is 'mainnet': real money. Set live.allow_mainnet = true in the config or "
        f"pass --mainnet {MAINNET_TOKEN} to trade it{given}"
    )


def live_endpoints(settings: Settings) -> Endpoints:
    """The REST and private websocket URLs of ``live.target`` (the local exchange's from
    ``[exchange]``)."""
    local = f"http://{settings.exchange.host}:{settings.exchange.port}"
    return endpoints(settings.live.target, local_url=local, category=settings.venue.category)


def market_data_for_target(settings: Settings) -> Settings:
    """The settings with the public market data of the traded target.

    Decisions must be made on the prices the orders fill at: a testnet account trades testnet's
    book, whose prices are not mainnet's. Unless ``venue.rest_url`` / ``venue.ws_url`` were
    set explicitly, they follow ``live.target`` (demo trading has no public data of its own
    and uses mainnet's; ``local`` uses the local exchange, like ``venue.target = "local"``)."""
    target = settings.live.target
    venue = settings.venue
    if target == "local":
        return settings.model_copy(update={"venue": venue.model_copy(update={"target": "local"})})
    if venue.target == "local":
        raise ConfigError(
            f"venue.target is 'local' but live.target is {target!r}: the bot would decide on "
            "the local exchange's prices and trade Bybit's (set both, or use --local)"
        )
    urls = live_endpoints(settings)
    rest = "https://api.bybit.com" if target == "demo" else urls.rest_url
    update = {}
    if "rest_url" not in venue.model_fields_set:
        update["rest_url"] = rest
    if "ws_url" not in venue.model_fields_set:
        update["ws_url"] = urls.public_ws_url
    return settings.model_copy(update={"venue": venue.model_copy(update=update)})


def rail_limits(settings: Settings) -> RailLimits:
    """The rails of ``[live]``; unset notional limits derive from the starting capital."""
    live = settings.live
    largest = settings.portfolio.initial_cash * settings.risk.max_weight * DEFAULT_RAIL_HEADROOM
    return RailLimits(
        max_order_notional=live.max_order_notional or largest,
        max_position_notional=live.max_position_notional or largest,
        max_orders_per_minute=live.max_orders_per_minute,
    )
