"""The daemon's journal wrappers: the gate drops replayed records, the echo narrates a demo."""

from bot.core.events import Decision, Fill, RunEvent
from bot.core.journal import MemoryJournal
from bot.core.timeutil import HOUR_MS
from bot.paper.journals import EchoJournal, GatedJournal

T = 1_704_067_200_000  # 2024-01-01 00:00


def fill(symbol: str, kind: str = "Trade", flow: float = -100.0) -> Fill:
    return Fill(f"x-{symbol}-{kind}", "l", symbol, T, 0.5, 200.0, 0.1, kind, flow)


def test_a_closed_gate_drops_everything_and_an_open_one_forwards():
    inner = MemoryJournal()
    gate = GatedJournal(inner)
    gate.open = False
    gate.record_fill(fill("AAAUSDT"))
    gate.record_equity(T, 1.0, 1.0, 0.0)
    gate.record_event(RunEvent(T, "x"))
    gate.record_progress(T)
    assert inner.fills == [] and inner.equity == [] and inner.events == []
    assert inner.progress is None
    gate.open = True
    gate.record_fill(fill("AAAUSDT"))
    gate.record_progress(T + HOUR_MS)
    assert len(inner.fills) == 1 and inner.progress == T + HOUR_MS


def test_the_echo_prints_decisions_trades_equity_and_one_line_per_funding_settlement():
    lines: list[str] = []
    inner = MemoryJournal()
    echo = EchoJournal(inner, lines.append)
    echo.record_decision(Decision(T, "momentum", "1", {"AAAUSDT": 0.5},
                                  {"AAAUSDT": 0.5, "BBBUSDT": 0.0}, ("BBBUSDT",)))  # fmt: skip
    echo.record_fill(fill("AAAUSDT"))
    echo.record_fill(fill("AAAUSDT", "Funding", -1.5))
    echo.record_fill(fill("BBBUSDT", "Funding", 2.25))
    assert not any("funding" in line for line in lines)  # grouped until the step is flushed
    echo.flush()
    echo.record_equity(T, 123_456.789, 1.0, 50_000.0)
    assert lines == [
        "2024-01-01 00:00  decide  momentum: AAAUSDT +50.0%  (stale: BBBUSDT)",
        "2024-01-01 00:00  fill    Buy 0.5 AAAUSDT @ 200  fee 0.10",
        "2024-01-01 00:00  funding AAAUSDT -1.50, BBBUSDT +2.25",
        "2024-01-01 00:00  equity  123,456.79 USDT (gross exposure 50,000)",
    ]
    assert len(inner.fills) == 3 and len(inner.decisions) == 1  # everything still recorded


def test_a_decision_line_names_the_model_version_and_the_explain_note():
    lines: list[str] = []
    notes = iter(["TABL: most attended bar t-4 (9%)", None])
    echo = EchoJournal(MemoryJournal(), lines.append, lambda decision: next(notes))
    for time in (T, T + HOUR_MS):
        echo.record_decision(Decision(time, "tabl", "1", {"AAAUSDT": 0.25}, {"AAAUSDT": 0.25},
                                      model_version="tabl-0123456789ab"))  # fmt: skip
    assert lines == [
        "2024-01-01 00:00  decide  tabl [tabl-0123456789ab]: AAAUSDT +25.0%"
        "  | TABL: most attended bar t-4 (9%)",
        "2024-01-01 01:00  decide  tabl [tabl-0123456789ab]: AAAUSDT +25.0%",
    ]


def test_the_echo_says_when_a_kill_switch_or_a_model_health_check_halts_trading():
    lines: list[str] = []
    echo = EchoJournal(MemoryJournal(), lines.append)
    echo.record_event(RunEvent(T, "kill_switch", {"reason": "drawdown 51% from the peak"}))
    echo.record_event(RunEvent(T + HOUR_MS, "model_health", {
        "strategy": "tabl", "reason": "prediction collapse: NaN outputs"}))  # fmt: skip
    echo.record_event(RunEvent(T, "wallet_baseline", {}))  # routine: not narrated
    assert lines == [
        "2024-01-01 00:00  KILL SWITCH  drawdown 51% from the peak",
        "2024-01-01 01:00  MODEL HALTED  tabl: prediction collapse: NaN outputs",
    ]


def test_a_closed_gate_checks_replayed_decisions_against_the_journal(caplog):
    stored = [{"time": T, "strategy": "m", "target": {"AAAUSDT": 0.5, "BBBUSDT": None}},
              {"time": T + HOUR_MS, "strategy": "m", "target": {"AAAUSDT": 0.0}}]  # fmt: skip
    gate = GatedJournal(MemoryJournal(), stored)
    gate.open = False
    gate.record_decision(Decision(T, "m", "1", {}, {"AAAUSDT": 0.5, "BBBUSDT": float("nan")}))
    gate.record_decision(Decision(T + HOUR_MS, "m", "1", {}, {"AAAUSDT": 0.25}))
    gate.record_decision(Decision(T + 2 * HOUR_MS, "m", "1", {}, {"AAAUSDT": 1.0}))  # unknown
    assert (gate.replayed, gate.diverged) == (2, 1)
    assert "replay diverged at 2024-01-01 01:00 (m)" in caplog.text


def test_the_echo_prints_one_equity_line_a_day_and_the_journal_keeps_every_snapshot():
    lines: list[str] = []
    inner = MemoryJournal()
    echo = EchoJournal(inner, lines.append)
    for hour in range(49):  # two days and an hour of hourly snapshots
        echo.record_equity(T + hour * HOUR_MS, 100.0 + hour, 100.0, 0.0)
    assert lines == [
        "2024-01-01 00:00  equity  100.00 USDT (gross exposure 0)",
        "2024-01-02 00:00  equity  124.00 USDT (gross exposure 0)",
        "2024-01-03 00:00  equity  148.00 USDT (gross exposure 0)",
    ]
    assert len(inner.equity) == 49
