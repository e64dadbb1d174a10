"""Bybit API credentials and the hosts of each trading target.

Keys come from environment variables only (never from the config file, the command line or the
store), and the moment they are read they are registered with :data:`bot.redact.SECRETS`, so
the log filter scrubs them from every line in any encoding. :class:`Credentials` never shows
its secret, and shows its key only as its last four characters: a repr that ends up in a log
line, a traceback or a report gives nothing away.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NoReturn, get_args

from bot.redact import register_secret

DEFAULT_KEY_VAR = "BYBIT_API_KEY"
DEFAULT_SECRET_VAR = "BYBIT_API_SECRET"
#: A key shorter than this is shown as ``***`` alone: four characters of it would be most of it.
_SHOWN_TAIL_MIN_LENGTH = 12

Target = Literal["mainnet", "testnet", "demo", "local"]
TARGETS: tuple[str, ...] = get_args(Target)


class MissingCredentialsError(LookupError):
    """An environment variable that should hold a key or secret is unset or empty."""


class Credentials:
    """An API key and its secret. The secret is reachable only through :attr:`secret`, for
    signing; the object refuses to be pickled or copied into a dict by accident."""

    __slots__ = ("_key", "_secret")

    def __init__(self, api_key: str, secret: str) -> None:
        if not api_key or not secret:
            raise ValueError("an API key and a secret are both required")
        self._key = api_key
        self._secret = secret

    @classmethod
    def from_env(
        cls,
        key_var: str = DEFAULT_KEY_VAR,
        secret_var: str = DEFAULT_SECRET_VAR,
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Read the key and secret from the named environment variables and register both
        as secrets for log scrubbing. Raises :class:`MissingCredentialsError` naming the
        variable (never a value) when one is unset or empty."""
        env = os.environ if environ is None else environ
        values = []
        for name in (key_var, secret_var):
            value = env.get(name, "").strip()
            if not value:
                raise MissingCredentialsError(f"environment variable {name} is not set")
            values.append(value)
        for value in values:
            register_secret(value)
        return cls(values[0], values[1])

    @property
    def api_key(self) -> str:
        """The key, as sent in ``X-BAPI-API-KEY`` and in the websocket auth request."""
        return self._key

    @property
    def secret(self) -> str:
        """The secret, for HMAC signing only: never send, store or log it."""
        return self._secret

    @property
    def masked_key(self) -> str:
        """What may be shown of the key: its last four characters, or nothing if it is short."""
        if len(self._key) < _SHOWN_TAIL_MIN_LENGTH:
            return "***"
        return "***" + self._key[-4:]

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.masked_key!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self._key, self._secret) == (other._key, other._secret)

    def __hash__(self) -> int:
        return hash(self._key)

    def __reduce__(self) -> NoReturn:  # pickle and copy: a secret must not travel in a blob
        raise TypeError("Credentials cannot be pickled or copied")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a target's REST API and private websocket are."""

    target: str
    rest_url: str
    private_ws_url: str
    #: Public market data; demo trading has none of its own and uses mainnet's.
    public_ws_url: str


_HOSTS: dict[str, tuple[str, str, str]] = {
    "mainnet": ("api.bybit.com", "stream.bybit.com", "stream.bybit.com"),
    "testnet": ("api-testnet.bybit.com", "stream-testnet.bybit.com", "stream-testnet.bybit.com"),
    "demo": ("api-demo.bybit.com", "stream-demo.bybit.com", "stream.bybit.com"),
}


def endpoints(target: str, local_url: str | None = None, category: str = "linear") -> Endpoints:
    """The URLs of ``target``: ``mainnet``, ``testnet``, ``demo`` (Bybit's demo trading:
    private endpoints only, public data from mainnet) or ``local`` (the project's local
    exchange at ``local_url``, e.g. ``http://127.0.0.1:8765``)."""
    if target == "local":
        if not local_url:
            raise ValueError("the local target needs the local exchange's base URL")
        base = local_url.rstrip("/")
        scheme, sep, rest = base.partition("://")
        if not sep or scheme not in ("http", "https"):
            raise ValueError(f"the local exchange's URL must be http(s)://host:port, not {base!r}")
        ws = ("wss://" if scheme == "https" else "ws://") + rest
        return Endpoints(target, base, f"{ws}/v5/private", f"{ws}/v5/public/{category}")
    if target not in _HOSTS:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    rest_host, private_host, public_host = _HOSTS[target]
    return Endpoints(
        target,
        f"https://{rest_host}",
        f"wss://{private_host}/v5/private",
        f"wss://{public_host}/v5/public/{category}",
    )
