"""``bot models``: the checkpoints ``bot train`` registered in the store."""

from __future__ import annotations

import argparse

from bot.cli.common import store_url, table
from bot.core.timeutil import iso
from bot.store import Store
from models.registry import MODELS


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("models", help="list trained checkpoints, newest first")
    p.add_argument("--model", choices=list(MODELS), help="only this architecture")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    p.set_defaults(handler=list_models)


def _day(time_ms: int | None) -> str:
    return "-" if time_ms is None else iso(time_ms)[:10]


def list_models(args: argparse.Namespace) -> int:
    store = Store(store_url(args))
    try:
        models = store.list_models(args.model, args.limit)
    finally:
        store.close()
    if not models:
        print("no trained models registered yet (train one with `bot train <model>`)")
        return 0
    rows = []
    for m in models:
        loss = m["metrics"].get("best_val_loss")
        rows.append([
            m["version"], ",".join(m["symbols"]), m["interval"],
            f"{_day(m['data_start'])}..{_day(m['data_end'])}",
            "-" if loss is None else f"{loss:.4g}", iso(m["created_at"]), m["path"],
        ])  # fmt: skip
    print(table(rows, ["version", "symbols", "interval", "trained on", "val loss", "created",
                       "path"]))  # fmt: skip
    return 0
