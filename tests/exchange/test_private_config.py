"""exchange.accounts: checked on load, and the keys never shown in a dump or a repr."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bot.config import ExchangeConfig, redacted
from tests.exchange.harness import make_settings

KEY, SECRET = "markerKEY4711", "markerSECRET4711"
ACCOUNT = {"name": "a", "api_key": KEY, "api_secret": SECRET}


def test_accounts_are_distinct_and_complete():
    config = ExchangeConfig(accounts=[ACCOUNT, {**ACCOUNT, "name": "b", "api_key": "other"}])
    assert [a.name for a in config.accounts] == ["a", "b"]
    assert config.accounts[0].position_mode == "one_way" and config.accounts[0].uta
    for accounts in (
        [ACCOUNT, {**ACCOUNT, "api_key": "other"}],  # same name
        [ACCOUNT, {**ACCOUNT, "name": "b"}],  # same key
        [{**ACCOUNT, "api_secret": ""}],
        [{**ACCOUNT, "name": "has space"}],
        [{**ACCOUNT, "position_mode": "both"}],
        [{**ACCOUNT, "leverage": 0.5}],
    ):
        with pytest.raises(ValidationError):
            ExchangeConfig(accounts=accounts)
    with pytest.raises(ValidationError):
        ExchangeConfig(private_faults={"lost_response_probability": 1.5})


def test_keys_are_hidden_from_dumps_reprs_and_the_run_snapshot():
    settings = make_settings(accounts=[ACCOUNT])
    shown = [
        repr(settings),
        str(settings.exchange.accounts[0]),
        json.dumps(settings.model_dump(mode="json")),
        json.dumps(redacted(settings)),
    ]
    for text in shown:
        assert KEY not in text and SECRET not in text
    assert settings.exchange.accounts[0].api_secret.get_secret_value() == SECRET
