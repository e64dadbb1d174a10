"""Keeping secrets out of everything the bot shows: URLs, free text, log records, snapshots.

The project's rule: API keys and database passwords come from the environment and never appear
in logs, the database or reports, in any encoding. Two complementary tools keep it:

* **Masking where credentials sit** (:func:`redact_url`, :func:`redact_text`,
  :func:`redact_data`): deterministic, needs no registration, and keeps the rest readable so an
  error still says *where* (scheme, host, port, path, harmless parameters). This is what the
  settings snapshot of a run and ``store open: ...`` lines use.
* **Scrubbing known values** (:class:`SecretRegistry`, :class:`SecretFilter`): every secret
  registered is removed from log records raw and in the encodings it travels in (URL-encoded,
  base64 alone or inside ``user:password``, hex, JSON-escaped), catching the places nobody
  thought of: a library's debug line, an exception's text.

**Registration must happen before anything is logged**, or the first lines slip through. The
CLI calls :func:`install_log_redaction` right after ``logging.basicConfig`` and before any
command runs: it registers the secrets of the environment (``BOT_STORE_URL``'s credentials,
``*_SECRET``, ``*_PASSWORD``, ``*_TOKEN``, ``*_API_KEY`` values, credentials of any URL in an
environment variable), of the command line (``--store URL``) and of URLs in the config file
(``venue.rest_url``), which is where settings come from. :func:`bot.config.redacted` registers
the settings' URLs again, so a program that builds settings without the CLI (a test, a
notebook) is covered from the moment it records a run. And whatever was never registered, the
filter still masks URL credentials it finds in a message (:func:`redact_text`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from sqlalchemy.engine import URL

#: What a secret is replaced with.
MASK = "***"
#: Shorter values are not registered: masking every "abc" in the logs would be noise, and a
#: credential that short protects nothing anyway.
MIN_SECRET_LENGTH = 4

#: Fragments that make a parameter name a credential wherever they occur in it, separators
#: ignored (``sslpassword``, ``api_key``, ``access_token``, ``X-Amz-Credential``).
_SECRET_FRAGMENTS = (
    "pass", "pwd", "secret", "token", "apikey", "credential", "signature", "authoriz", "jwt",
    "cookie", "privatekey", "accesskey", "sessionid",
)  # fmt: skip
#: Words that make a name a credential only on their own (``key``, ``X-Api-Key``, ``auth``,
#: ``authSource``, ``sign``), so that ``signal`` or ``keepalives`` stay readable.
_SECRET_WORDS = frozenset({"key", "auth", "oauth", "sign", "sig", "session", "private"})
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

#: Schemes whose bare userinfo (``postgresql://postgres@host``) is a user name, not a token.
_USER_SCHEMES = frozenset(
    {"postgresql", "postgres", "sqlite", "mysql", "mariadb", "oracle", "mssql", "cockroachdb"}
)
#: Environment variables whose whole value is a secret (``BYBIT_API_SECRET``, ``PGPASSWORD``).
_SECRET_ENV_SUFFIXES = (
    "_SECRET", "PASSWORD", "PASSWD", "_TOKEN", "_API_KEY", "_APIKEY", "_ACCESS_KEY",
    "_PRIVATE_KEY",
)  # fmt: skip
#: Environment variables holding a URL whose credentials are secrets, whatever their form.
_URL_ENV = ("BOT_STORE_URL",)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
#: SQLAlchemy's reading of a userinfo: a user up to ``:``, a password up to the first ``@``
#: (it may hold ``/``, ``?`` or ``#``, which end the authority for urllib).
_SA_USERINFO = re.compile(r"[^:/]*:[^@]*@")
#: ``key=value`` in a query (a value runs to the next ``&``: SQLAlchemy's parse_qsl splits on
#: nothing else), in path parameters (``;jsessionid=``) and in a fragment (``#access_token=``).
_PAIRS = (
    re.compile(r"[?&]([^=&#?]*)=([^&]*)"),
    re.compile(r";([^=&;#?]*)=([^&;#?]*)"),
    re.compile(r"#([^=&#?]*)=([^&]*)"),
)

_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
#: ``password=...`` outside a URL: a libpq conninfo, a log line, an exception message.
_PAIR_IN_TEXT = re.compile(
    r"(?<![\w%.\-])([A-Za-z_][\w.\-]*)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s'\"&]+)"
)
#: ``'password': '...'`` in the repr of a mapping or in JSON.
_QUOTED_PAIR = re.compile(r"(['\"])([A-Za-z_][\w.\-]*)\1(\s*:\s*)(['\"])((?:(?!\4).)*)\4")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/\-]+=*)")


def is_secret_key(name: str) -> bool:
    """Whether a parameter called ``name`` holds a credential. Deliberately broad: masking a
    harmless ``sslkey`` path costs a little readability, missing a ``X-Api-Key`` costs the key."""
    if name.lower().endswith("_env"):  # live.key_env: the *name* of the variable with the key
        return False
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(fragment in compact for fragment in _SECRET_FRAGMENTS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORDS.findall(name))


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """Where the credentials of ``url`` sit, as ``(start, end)`` character spans (they may
    overlap: a value is covered as each plausible reader would cut it).

    The authority is read both as urllib does (up to the first ``/?#``, userinfo up to its last
    ``@``) and as SQLAlchemy does (password up to the first ``@``, slashes allowed), and the
    longer userinfo wins: whichever library ends up using the URL, its password is covered,
    even when the user did not percent-encode it (``u:p@ss@host``, ``u:pa/ss@host``). The price
    is that ``https://host:443/?mail=a@b`` shows as ``https://host:***@b``: masking too much
    beats showing a password."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    rest = url[start:]
    authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    at = rest.rfind("@", 0, authority_end)
    if sa_userinfo := _SA_USERINFO.match(rest):
        at = max(at, sa_userinfo.end() - 1)
    spans = []
    if at > 0:
        user, colon, password = rest[:at].partition(":")
        if colon and password:
            spans.append((start + len(user) + 1, start + at))
        elif not colon and (scheme is None or _base_scheme(scheme.group(1)) not in _USER_SCHEMES):
            spans.append((start, start + at))  # https://TOKEN@host
    tail = start + max(at, 0)
    for pattern in _PAIRS:
        for pair in pattern.finditer(url, tail):
            value = pair.group(2)
            if value and is_secret_key(unquote_plus(pair.group(1))):
                begin = pair.start(2)
                spans.append((begin, pair.end(2)))
                # urllib and yarl end the value at ';' or '#' where SQLAlchemy does not
                spans.append((begin, begin + len(re.split("[;#]", value, maxsplit=1)[0])))
    return [(begin, end) for begin, end in spans if end > begin]


def _base_scheme(scheme: str) -> str:
    return scheme.split("+", 1)[0].lower()


def _url_text(url: str | URL) -> str:
    return url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)


def redact_url(url: str | URL) -> str:
    """``url`` with every credential masked: the userinfo password, a userinfo that is a bare
    token (``https://TOKEN@host``; a database user name stays), and the values of credential
    query parameters (``?password=``, ``&API_KEY=``). Scheme, host, port, path and other
    parameters stay, so messages still say where.

    Works on text no URL parser accepts, and never raises: it runs inside error handling, where
    an exception of its own would hide the real error (``***`` is returned instead)."""
    try:
        text = _url_text(url)
        pieces, last = [], 0
        for begin, end in sorted(_secret_spans(text)):
            if begin >= last:
                pieces += [text[last:begin], MASK]
            last = max(last, end)
        return "".join([*pieces, text[last:]])
    except Exception:  # the caller is reporting something else: never replace it with ours
        return MASK


def url_secrets(url: str | URL) -> set[str]:
    """The credential values in ``url``, as written and percent-decoded (what a connection
    actually sends), for registering with :class:`SecretRegistry`."""
    text = _url_text(url)
    found = set()
    for begin, end in _secret_spans(text):
        written = text[begin:end]
        found |= {written, unquote(written), unquote_plus(written)}
    if isinstance(url, URL) and url.password is not None:
        found.add(str(url.password))
    return found


def _mask_pair(match: re.Match[str]) -> str:
    key, sep, value = match.groups()
    # a bare "key=value" in prose is the CLI's own usage hint, not a credential
    if not is_secret_key(key) or key.lower() == "key":
        return match.group()
    quoted = value[0] if value[0] in "'\"" else ""
    return f"{key}{sep}{quoted}{MASK}{quoted}"


def _mask_quoted_pair(match: re.Match[str]) -> str:
    q, key, sep, vq, value = match.groups()
    if not value or not is_secret_key(key):
        return match.group()
    return f"{q}{key}{q}{sep}{vq}{MASK}{vq}"


def redact_text(text: str) -> str:
    """Free text (an exception message, a log line) with credentials masked wherever they look
    like credentials: inside URLs, as ``password=...`` pairs (libpq conninfo), as
    ``'token': '...'`` in a mapping's repr, after ``Bearer``."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    text = _PAIR_IN_TEXT.sub(_mask_pair, text)
    text = _QUOTED_PAIR.sub(_mask_quoted_pair, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def redact_data(data: Any) -> Any:
    """Plain data (a settings dump) with secrets masked: string values under credential-looking
    keys replaced, every other string through :func:`redact_text`. Deterministic, so equal
    settings always give equal snapshots (a paper run's fingerprint hashes one)."""
    if isinstance(data, dict):
        return {
            key: MASK if isinstance(value, str) and value and is_secret_key(str(key))
            else redact_data(value)
            for key, value in data.items()
        }  # fmt: skip
    if isinstance(data, list):
        return [redact_data(value) for value in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


def encoded_forms(value: str) -> set[str]:
    """The shapes ``value`` takes on its way through URLs, headers and JSON: raw; percent-
    encoded (``quote`` with and without ``/`` safe, SQLAlchemy's, ``quote_plus``; upper- and
    lower-case escapes); JSON-escaped; hex (both cases); base64, standard and URL-safe, with and
    without padding, alone and at each byte offset inside a longer encoded text (HTTP Basic
    auth encodes ``user:password``: the secret's own characters are then shifted, so the part
    of them that depends on the secret alone is what is matched)."""
    raw = value.encode()
    forms = {value, json.dumps(value)[1:-1], raw.hex(), raw.hex().upper(), quote_plus(value)}
    forms |= {quote(value, safe=safe) for safe in ("", "/", " +")}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in list(forms)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        shapes = {whole, whole.rstrip("=")}
        for offset in range(3):
            shifted = encode(bytes(offset) + raw).decode()
            shapes.add(shifted[(8 * offset + 5) // 6 : 8 * (offset + len(raw)) // 6])
        forms |= shapes | {quote(shape, safe="") for shape in shapes}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class SecretRegistry:
    """Known secret values, scrubbed from text in all their :func:`encoded_forms`.

    Thread-safe: the daemon logs from worker threads while settings may register more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str | None) -> None:
        """Scrub ``value`` from now on; empty and very short values are ignored."""
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            self._forms |= encoded_forms(value)
            longest_first = sorted(self._forms, key=lambda form: (-len(form), form))
            self._pattern = re.compile("|".join(map(re.escape, longest_first)))

    def scrub(self, text: str) -> str:
        """``text`` with every registered secret, in any of its forms, replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)


#: The process's secrets: what the CLI and :func:`bot.config.redacted` register.
SECRETS = SecretRegistry()


def register_secret(value: str | None, registry: SecretRegistry = SECRETS) -> None:
    """Never log ``value`` (nor its encodings) again; see :meth:`SecretRegistry.register`."""
    registry.register(value)


def register_url_secrets(url: str | URL, registry: SecretRegistry = SECRETS) -> None:
    """Register the password, bare-token userinfo and credential query values of ``url``."""
    for value in url_secrets(url):
        registry.register(value)


def register_text_secrets(text: str, registry: SecretRegistry = SECRETS) -> None:
    """Register the credentials of every URL and ``password=...`` pair in ``text`` (a command
    line argument, a config file), and of ``text`` itself when it starts as a URL (a password
    with a raw space would end the URL found inside it too early)."""
    if _SCHEME.match(text):
        register_url_secrets(text, registry)
    for url in _URL_IN_TEXT.finditer(text):
        register_url_secrets(url.group(), registry)
    for pair in _PAIR_IN_TEXT.finditer(text):
        key, _, value = pair.groups()
        if is_secret_key(key):
            registry.register(value.strip("'\""))


def register_environment_secrets(
    environ: Mapping[str, str] = os.environ, registry: SecretRegistry = SECRETS
) -> None:
    """Register the secrets the environment holds: whole values of variables named like a
    secret (``*_SECRET``, ``*PASSWORD``, ``*_TOKEN``, ``*_API_KEY``, ...), ``BOT_STORE_URL``'s
    credentials, and the credentials of any URL in any variable (a proxy, a test database)."""
    for name, value in environ.items():
        if name.upper().endswith(_SECRET_ENV_SUFFIXES):
            registry.register(value)
        if name in _URL_ENV:
            register_url_secrets(value, registry)
        if "://" in value:
            register_text_secrets(value, registry)


def scrub_text(text: str, registry: SecretRegistry = SECRETS) -> str:
    """``text`` without registered secrets (in any encoding) and without URL credentials: for
    what reaches a person without passing through logging, such as the CLI's one-line error
    messages and a traceback it prints."""
    return redact_text(registry.scrub(text))


class SecretFilter(logging.Filter):
    """Scrubs log records on a handler: the message after formatting (its ``args`` are merged
    in and dropped, so no handler formats the raw ones again), the exception text and the stack
    text. Registered secrets go in every encoding; URL credentials and ``password=`` pairs are
    masked even when never registered. The record is changed in place, for every handler."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self.registry = registry

    def scrub(self, text: str) -> str:
        return scrub_text(text, self.registry)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it later, with msg and args
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


_FILTER = SecretFilter()


def install_log_redaction(argv: Iterable[str] = (), config: str | Path | None = None) -> None:
    """Scrub secrets from everything the root logger's handlers emit; call it right after
    ``logging.basicConfig``, before anything else logs. Registers the environment's secrets and
    those of URLs in ``argv`` and in the ``config`` file first (see the module's docstring for
    why then). Idempotent: a handler gets the filter once, however often this runs."""
    register_environment_secrets()
    for arg in argv:
        register_text_secrets(arg)
    if config is not None:
        # no readable config: the command reports it, and there is nothing in it to register
        with contextlib.suppress(OSError, UnicodeDecodeError):
            register_text_secrets(Path(config).read_text())
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
