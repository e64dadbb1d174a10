"""``bot paper`` refuses, in one line and with exit status 2, what it cannot do as asked: a run
another daemon drives (before touching the venue), and a bad ``--store``."""

from __future__ import annotations

from pathlib import Path

from bot.cli.main import main
from bot.config import load_settings
from bot.paper.daemon import fingerprint
from bot.store import Store

CLOSED_PORT = 1  # nothing listens there: the refusal must come before any venue call


def paper(workdir: Path, *args: str) -> int:
    config = workdir / "config.toml"
    text = config.read_text() + f'[venue]\ntarget = "local"\n[exchange]\nport = {CLOSED_PORT}\n'
    config.write_text(text)
    return main(["--config", str(config), "paper", *args])


def leased_run(workdir: Path, holder: str) -> str:
    settings = load_settings(workdir / "config.toml")
    with Store(settings.store.url) as store:
        store.create_run(
            run_id="r" * 16, kind="paper", strategy="momentum", symbols=["AAAUSDT", "BBBUSDT"],
            interval="1h", config={"fingerprint": fingerprint(settings)}, code_version="t",
            started_at=1, data_start=0,
        )  # fmt: skip
        store.acquire_lease("r" * 16, holder, ttl_s=600)
    return "r" * 16


def test_a_second_daemon_is_refused_naming_the_holder(workdir, capsys):
    leased_run(workdir, "trading-box:4242:cafe")
    assert paper(workdir) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bot: run {'r' * 16} is driven by another daemon (pid 4242 on host "
                          "trading-box")  # fmt: skip
    assert "--force" in err and err.count("\n") == 1


def test_a_bad_store_flag_is_named(workdir, capsys):
    assert paper(workdir, "--store", "mysql://bot@db/bot") == 2
    err = capsys.readouterr().err
    assert err.startswith("bot: --store (store.url): ") and err.count("\n") == 1
