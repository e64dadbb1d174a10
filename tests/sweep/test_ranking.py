"""Ranking: mean in-sample score over folds, failures and undefined scores last."""

import math

from backtest.sweep_results import TrialResult, frame, rank, trial_json
from backtest.sweep_trial import TrialOutcome


def trial(number: int, folds: list[float | None], holdout: float | None = 0.5,
          error: str | None = None) -> TrialResult:  # fmt: skip
    t = TrialResult(number, {"lookback": number * 24})
    for k, sharpe in enumerate(folds, start=1):
        finish = {"metrics": {"sharpe": sharpe, "total_return": 0.01, "max_drawdown": 0.1}}
        t.outcomes[f"fold {k}"] = TrialOutcome(number, f"fold {k}", f"r{number}{k}", finish=finish)
    if error:
        t.outcomes["fold 1"] = TrialOutcome(number, "fold 1", "x", error=error)
    t.outcomes["holdout"] = TrialOutcome(
        number, "holdout", f"h{number}", finish={"metrics": {"sharpe": holdout}}
    )
    return t


def test_ranked_by_mean_over_folds_failures_and_nan_last():
    trials = [
        trial(1, [1.0, 3.0]),  # mean 2.0
        trial(2, [2.5, 2.5]),  # mean 2.5
        trial(3, [None, 9.0]),  # undefined in one fold: unranked
        trial(4, [9.0, 9.0], error="ValueError: boom"),
        trial(5, [2.0, 2.0]),  # ties trial 1: trial order
    ]
    assert [t.trial for t in rank(trials, "sharpe")] == [2, 1, 5, 3, 4]
    assert trials[0].spread("sharpe") == math.sqrt(2)


def test_lower_is_better_for_drawdown():
    a, b = trial(1, [1.0]), trial(2, [1.0])
    a.outcomes["fold 1"].finish["metrics"]["max_drawdown"] = 0.3
    assert [t.trial for t in rank([a, b], "max_drawdown")] == [2, 1]


def test_table_and_json_show_in_and_out_of_sample():
    ranked = rank([trial(1, [1.0, 3.0], holdout=-1.0), trial(2, [0.0, 0.0], error="E: x")],
                  "sharpe")  # fmt: skip
    df = frame(ranked, "sharpe", folds=True)
    assert list(df.columns) == [
        "rank", "trial", "lookback", "IS sharpe", "IS sharpe sd", "IS return", "IS max dd",
        "IS turnover/yr", "OOS sharpe", "OOS return", "error",
    ]  # fmt: skip
    first = df.iloc[0]
    assert (first["trial"], first["IS sharpe"], first["OOS sharpe"]) == (1, 2.0, -1.0)
    assert df.iloc[1]["error"] == "fold 1: E: x"
    doc = trial_json(ranked[1], 2, "sharpe")
    assert doc["score"] is None and doc["error"] == "fold 1: E: x"
    assert doc["runs"]["holdout"]["run_id"] == "h2"
