"""The registry of trained checkpoints."""

from __future__ import annotations

from bot.store import Store


def record(version: str, model: str = "tabl", created_at: int = 1) -> dict:
    return {
        "version": version,
        "model": model,
        "path": f"out/{version}.pt",
        "feature_digest": "f" * 16,
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "interval": "1h",
        "data_start": 1_700_000_000_000,
        "data_end": 1_710_000_000_000,
        "hyperparameters": {"seq_len": 100},
        "training": {"epochs": 3, "lr": 0.001},
        "metrics": {"best_val_loss": 0.5},
        "code_version": "test",
        "created_at": created_at,
    }


def test_models_are_registered_once_and_listed_newest_first(store: Store) -> None:
    assert store.register_model(record("tabl-aaaaaaaaaaaa", created_at=1))
    assert store.register_model(record("cross_asset-bbbbbbbbbbbb", "cross_asset", 2))
    assert not store.register_model(record("tabl-aaaaaaaaaaaa", created_at=3))  # same weights
    listed = store.list_models()
    assert [m["version"] for m in listed] == ["cross_asset-bbbbbbbbbbbb", "tabl-aaaaaaaaaaaa"]
    assert listed[1]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert listed[1]["metrics"] == {"best_val_loss": 0.5}
    assert [m["version"] for m in store.list_models("tabl")] == ["tabl-aaaaaaaaaaaa"]
