"""Secrets never leave through a URL, a message or a log record, in any form they travel in."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import re
import secrets
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from bot.config import Settings, redacted
from bot.redact import (
    MASK,
    SECRETS,
    SecretFilter,
    SecretRegistry,
    install_log_redaction,
    is_secret_key,
    redact_data,
    redact_text,
    redact_url,
    register_environment_secrets,
    register_url_secrets,
    scrub_text,
    url_secrets,
)

#: A password with every character class URLs mangle: reserved, space, non-ASCII.
SECRET = "Mk7q9Z@/+ é:x#1"
Q = quote(SECRET, safe="")
QP = quote_plus(SECRET)


def marker() -> str:
    """A value that appears nowhere unless a test put it there."""
    return f"mark{secrets.token_hex(8)}"


def forms(value: str) -> dict[str, str]:
    """``value`` in the encodings a secret typically travels in (computed here, independently
    of the module under test)."""
    raw = value.encode()
    return {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote_slash": quote(value),
        "quote_plus": quote_plus(value),
        "json": json.dumps(value)[1:-1],
        "b64": base64.b64encode(raw).decode(),
        "b64_bare": base64.b64encode(raw).decode().rstrip("="),
        "b64url": base64.urlsafe_b64encode(raw).decode(),
        "b64url_bare": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


# -- redact_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the userinfo password, percent-encoded as it should be ...
        (f"postgresql+psycopg://bot:{Q}@db.example:5432/bot",
         "postgresql+psycopg://bot:***@db.example:5432/bot"),
        ("postgresql://bot:p%40ss@db/bot", "postgresql://bot:***@db/bot"),
        # ... or not: '@' and '/' in it, read as urllib and as SQLAlchemy would
        ("postgresql://bot:p@ss@db/bot", "postgresql://bot:***@db/bot"),
        ("postgresql://bot:pa/ss@db/bot", "postgresql://bot:***@db/bot"),
        ("postgresql://bot:pa?ss@db/bot?sslmode=require",
         "postgresql://bot:***@db/bot?sslmode=require"),
        ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
        # psycopg takes the password as a query parameter too, in any case
        (f"postgresql+psycopg://bot@db/bot?password={QP}&sslmode=require",
         "postgresql+psycopg://bot@db/bot?password=***&sslmode=require"),
        ("postgresql://bot@db/bot?sslmode=require&PASSWORD=hunter22",
         "postgresql://bot@db/bot?sslmode=require&PASSWORD=***"),
        ("postgresql://bot:a@db/bot?Password=b&application_name=bot",
         "postgresql://bot:***@db/bot?Password=***&application_name=bot"),
        ("postgresql://bot@db/bot?sslpassword=abcd&sslkey=%2Fk.pem",
         "postgresql://bot@db/bot?sslpassword=***&sslkey=%2Fk.pem"),
        ("postgresql://bot@db/bot?pass%77ord=hunter22", "postgresql://bot@db/bot?pass%77ord=***"),
        # a database user name is not a secret ...
        ("postgresql+psycopg://postgres@127.0.0.1:5432/test",
         "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        # ... but a bare userinfo of a web URL is a token
        ("https://ghp_abcdef123456@proxy.example/bybit", "https://***@proxy.example/bybit"),
        ("https://user:hunter22@proxy.example:8443/v5?category=linear",
         "https://user:***@proxy.example:8443/v5?category=linear"),
        # venue-style credentials in the query and the fragment
        ("wss://stream.example/v5/public/linear?api_key=k1&sign=s1&timestamp=1",
         "wss://stream.example/v5/public/linear?api_key=***&sign=***&timestamp=1"),
        ("https://h/cb?state=ok#access_token=t1&expires_in=60",
         "https://h/cb?state=ok#access_token=***&expires_in=60"),
        ("https://h/p;jsessionid=abc123?x=1", "https://h/p;jsessionid=***?x=1"),
        ("http://[::1]:8080/a?X-Api-Key=k1", "http://[::1]:8080/a?X-Api-Key=***"),
        # nothing secret: unchanged, to the character
        ("https://api.bybit.com", "https://api.bybit.com"),
        ("sqlite:////tmp/a@b/bot.db", "sqlite:////tmp/a@b/bot.db"),
        ("https://h/v5?signal=1&keepalives=1&password=", "https://h/v5?signal=1&keepalives=1&password="),
        # text no URL parser accepts
        ("bot:hunter22@db/bot", "bot:***@db/bot"),
        ("postgresql://bot:hunter22@[::1/bot", "postgresql://bot:***@[::1/bot"),
        ("not a url", "not a url"),
        ("", ""),
    ],
)  # fmt: skip
def test_redact_url_masks_every_credential_and_keeps_the_rest(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "passwd", "pwd", "pass", "secret", "token", "key", "api_key",
     "apikey", "apiKey", "API-KEY", "access_token", "auth", "signature", "sign", "sslpassword",
     "credential", "X-Amz-Credential", "client_secret", "x-bapi-sign", "authSource"],
)  # fmt: skip
def test_credential_query_keys_are_masked_in_any_case(key):
    value = marker()
    shown = redact_url(f"https://h.example/v5?category=linear&{key}={value}&limit=5")
    assert value not in shown
    assert shown == f"https://h.example/v5?category=linear&{key}=***&limit=5"
    assert value in url_secrets(f"https://h.example/v5?{key}={value}")


@pytest.mark.parametrize(
    "key", ["sslmode", "category", "application_name", "signal", "keepalives", "limit", "symbol"]
)
def test_ordinary_query_keys_stay_readable(key):
    assert not is_secret_key(key)
    assert redact_url(f"https://h/v5?{key}=abc") == f"https://h/v5?{key}=abc"


def test_sqlalchemy_url_objects_are_redacted_with_the_query_form():
    url = sa.URL.create(
        "postgresql+psycopg", username="bot", password=SECRET, host="db", port=5432,
        database="bot", query={"password": SECRET, "sslmode": "require"},
    )  # fmt: skip
    shown = redact_url(url)
    assert shown == "postgresql+psycopg://bot:***@db:5432/bot?password=***&sslmode=require"
    assert SECRET in url_secrets(url)  # the decoded value is what travels: it gets registered


def test_redact_url_never_raises():
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert redact_url(Unprintable()) == MASK  # type: ignore[arg-type]
    for junk in ["::::@@@", "%%%", "http://[", "a://b:c@", "@", ":@", "?password", "#=&=;="]:
        assert isinstance(redact_url(junk), str)


# -- redact_text and redact_data ---------------------------------------------------------------


def test_redact_text_masks_credentials_inside_messages():
    text = (
        "cannot open store 'postgresql://bot:hunter22@db/bot?password=hunter33' "
        "(conninfo: host=db password=hunter44 dbname=bot; user='x' password='hunter 55'), "
        "headers {'Authorization': 'Bearer hunter66', 'api_key': \"hunter77\"} "
        "via wss://tok12345@proxy.example/ws."
    )
    shown = redact_text(text)
    assert "hunter" not in shown and "tok12345" not in shown
    assert "postgresql://bot:***@db/bot?password=***'" in shown
    assert "host=db password=*** dbname=bot" in shown and "password='***'" in shown
    assert "wss://***@proxy.example/ws." in shown
    assert redact_text(shown) == shown  # masking again changes nothing


def test_redact_data_masks_values_under_secret_keys_and_urls_anywhere():
    data = {
        "store": {"url": "postgresql://bot:hunter22@db/bot"},
        "strategies": [{"name": "x", "params": {"api_key": "k-123456", "lookback": 24,
                                                 "feed": "https://u:hunter33@h/x", "sign": 1}}],
    }  # fmt: skip
    shown = redact_data(data)
    assert "hunter" not in json.dumps(shown) and "k-123456" not in json.dumps(shown)
    assert shown["strategies"][0]["params"]["lookback"] == 24
    assert shown["strategies"][0]["params"]["sign"] == 1  # only strings are credentials
    assert redact_data(shown) == shown


# -- the registry: every encoding --------------------------------------------------------------


@pytest.mark.parametrize("form", list(forms(SECRET)))
def test_registered_secrets_are_scrubbed_in_every_encoding(form):
    registry = SecretRegistry()
    registry.register(SECRET)
    encoded = forms(SECRET)[form]
    scrubbed = registry.scrub(f"before {encoded} after")
    assert scrubbed == f"before {MASK} after"


def _decodings(text: str) -> list[bytes]:
    """Everything base64-decodable in ``text``, at every alignment, in both alphabets."""
    found = []
    for run in re.findall(r"[A-Za-z0-9+/_\-=]+", text):
        for start in range(4):
            chunk = run[start:].rstrip("=")
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(binascii.Error, ValueError):
                    found.append(decode(chunk))
    return found


@pytest.mark.parametrize("user", ["", "a", "ab", "bot", "user-name"])
def test_a_secret_inside_basic_auth_cannot_be_decoded_after_scrubbing(user):
    value = marker()
    registry = SecretRegistry()
    registry.register(value)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        header = "Authorization: Basic " + encode(f"{user}:{value}".encode()).decode()
        scrubbed = registry.scrub(header)
        assert MASK in scrubbed
        assert not any(value[2:-2].encode() in decoded for decoded in _decodings(scrubbed))


def test_scrub_text_covers_registered_values_and_unregistered_urls():
    registry = SecretRegistry()
    registry.register("hunter22")
    encoded = base64.b64encode(b"hunter22").decode()
    text = f"bot: cannot open {encoded} (hunter22) at https://u:other-pw@h/x"
    assert scrub_text(text, registry) == "bot: cannot open *** (***) at https://u:***@h/x"


def test_short_and_empty_values_are_not_registered():
    registry = SecretRegistry()
    for value in ["", "abc", None]:
        registry.register(value)
    assert registry.scrub("abc and abcd") == "abc and abcd"
    registry.register("abcd")
    assert registry.scrub("abc and abcd") == f"abc and {MASK}"


def test_url_secrets_are_registered_as_written_and_decoded():
    registry = SecretRegistry()
    register_url_secrets(f"postgresql://bot:{Q}@db/bot?password={QP}", registry)
    for encoded in forms(SECRET).values():
        assert encoded not in registry.scrub(encoded)


# -- the log filter ----------------------------------------------------------------------------


def logger_with_filter(registry: SecretRegistry) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter(registry))
    log = logging.getLogger(f"test.redact.{secrets.token_hex(4)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log, stream


def test_the_filter_scrubs_message_args_exception_and_stack():
    value = marker()
    registry = SecretRegistry()
    registry.register(value)
    log, stream = logger_with_filter(registry)
    log.info("plain %s and encoded %s", value, base64.b64encode(value.encode()).decode())
    log.debug("as a mapping: %r", {"x": quote(value)})
    try:
        raise ConnectionError(f"refused for {value.encode().hex()}")
    except ConnectionError:
        log.exception("connect failed", stack_info=True)
    log.warning("never registered: wss://stream.example/ws?api_key=k-98765 %s", "ok")
    log.info("%d broken format", value)  # logging reports the error; the secret stays out
    out = stream.getvalue()
    for encoded in forms(value).values():
        assert encoded not in out
    assert "k-98765" not in out and "ConnectionError: refused for ***" in out
    assert "api_key=*** ok" in out


def test_the_filter_leaves_the_record_formatted_without_args():
    registry = SecretRegistry()
    registry.register("hunter22")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "user %s pw %s", ("bot", "hunter22"),
                               None)  # fmt: skip
    assert SecretFilter(registry).filter(record) is True
    assert record.args is None and record.getMessage() == "user bot pw ***"


def test_install_registers_environment_argv_and_config_secrets_once(tmp_path, monkeypatch, caplog):
    values = [marker() for _ in range(8)]
    monkeypatch.setenv("BYBIT_API_SECRET", values[0])
    monkeypatch.setenv("PGPASSWORD", values[1])
    monkeypatch.setenv("BOT_STORE_URL", f"postgresql://bot:{values[2]}@db/bot?password={values[3]}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://proxy:{values[4]}@proxy.example:3128")
    config = tmp_path / "config.toml"
    config.write_text(f'[venue]\nrest_url = "https://{values[5]}@proxy.example/bybit"\n')
    argv = ["runs", "list", "--store", f"postgresql://bot:{values[6]}@db/bot"]
    caplog.set_level(logging.DEBUG)
    install_log_redaction(argv, config)
    install_log_redaction(argv, tmp_path / "missing.toml")  # again: no second filter, no error
    root = logging.getLogger()
    assert root.handlers
    for handler in root.handlers:
        assert sum(isinstance(f, SecretFilter) for f in handler.filters) == 1
    logging.getLogger("test.redact").debug("values: %s", " ".join(values[:7]))
    assert not any(value in caplog.text for value in values[:7])
    assert caplog.text.count(MASK) == 7
    logging.getLogger("test.redact").debug("unregistered: %s", values[7])
    assert values[7] in caplog.text  # only secrets are masked, not everything


def test_environment_secrets_by_name_and_url():
    registry = SecretRegistry()
    register_environment_secrets(
        {"X_TOKEN": "tok-1234", "TOKENIZERS_PARALLELISM": "false", "HOME": "/home/bot",
         "DATABASE_URL": "postgresql://u:pw-12345@h/d"},
        registry,
    )  # fmt: skip
    assert registry.scrub("tok-1234 pw-12345 false /home/bot") == "*** *** false /home/bot"


def test_redacted_settings_snapshot_holds_no_credential_and_registers_them():
    password, key, token = marker(), marker(), marker()
    settings = Settings.model_validate(
        {
            "engine": {"symbols": ["BTCUSDT"]},
            "instruments": {"BTCUSDT": {"qty_step": 0.001}},
            "store": {"url": f"postgresql+psycopg://bot:{password}@db/bot?password={password}"},
            "venue": {"rest_url": f"https://bot:{key}@proxy.example/bybit?api_key={key}",
                      "ws_url": f"wss://{token}@proxy.example/v5/public/linear?token={token}"},
            "strategies": [{"name": "momentum", "params": {"feed": f"https://{token}@x.example"}}],
        }
    )  # fmt: skip
    snapshot = json.dumps(redacted(settings))
    assert not any(v in snapshot for v in (password, key, token))
    shown = redacted(settings)
    assert shown["store"]["url"] == "postgresql+psycopg://bot:***@db/bot?password=***"
    assert shown["venue"]["rest_url"] == "https://bot:***@proxy.example/bybit?api_key=***"
    assert shown["venue"]["ws_url"] == "wss://***@proxy.example/v5/public/linear?token=***"
    assert shown["strategies"][0]["params"]["feed"] == "https://***@x.example"
    assert SECRETS.scrub(f"{password} {key} {token}") == f"{MASK} {MASK} {MASK}"


def test_redacted_leaves_a_settings_snapshot_without_secrets_as_it_was():
    settings = Settings.model_validate(
        {"engine": {"symbols": ["BTCUSDT"]}, "instruments": {"BTCUSDT": {"qty_step": 0.001}},
         "strategies": [{"name": "momentum", "params": {"lookback": 24, "rebalance": "1d"}}]}
    )  # fmt: skip
    assert redacted(settings) == settings.model_dump(mode="json")
