"""Walk-forward folds: consecutive, covering the period, the holdout last."""

import itertools

import pytest

from backtest.sweep_folds import FoldError, Span, walk_forward

HOUR = 3_600_000
START = 1_717_200_000_000  # 2024-06-01


@pytest.mark.parametrize(("bars", "folds", "holdout"), [(100, 3, 0.25), (101, 4, 0.2), (50, 1, 0)])
def test_folds_are_consecutive_cover_the_period_and_end_with_the_holdout(bars, folds, holdout):
    end = START + bars * HOUR
    spans = walk_forward(START, end, HOUR, folds, holdout)
    assert spans[0].start_ms == START and spans[-1].end_ms == end
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(spans))
    assert all((s.end_ms - s.start_ms) % HOUR == 0 for s in spans)
    assert [s.name for s in spans[:folds]] == [f"fold {k + 1}" for k in range(folds)]
    assert all(s.in_sample for s in spans[:folds])
    sizes = [(s.end_ms - s.start_ms) // HOUR for s in spans[:folds]]
    assert max(sizes) - min(sizes) <= 1
    if holdout:
        assert len(spans) == folds + 1
        assert spans[-1] == Span("holdout", spans[-1].start_ms, end, False)
        assert (end - spans[-1].start_ms) // HOUR == round(bars * holdout)
    else:
        assert len(spans) == folds


def test_example_split():
    spans = walk_forward(START, START + 10 * HOUR, HOUR, 2, 0.2)
    assert [(s.name, (s.start_ms - START) // HOUR, (s.end_ms - START) // HOUR) for s in spans] == [
        ("fold 1", 0, 4), ("fold 2", 4, 8), ("holdout", 8, 10),
    ]  # fmt: skip


def test_an_off_grid_end_closes_the_last_span():
    end = START + 10 * HOUR + 1
    assert walk_forward(START, end, HOUR, 2, 0)[-1].end_ms == end


@pytest.mark.parametrize(
    ("folds", "holdout", "message"),
    [
        (0, 0.25, "--folds 0: give at least 1"),
        (2, 1.0, "--holdout 1.0: give a fraction in [0, 1)"),
        (5, 0.0, "--folds 5: 8 in-sample bars leave fewer than 2 bars per fold"),
        (2, 0.05, "--holdout 0.05: 0 of 8 bars; the holdout needs 2"),
    ],
)
def test_impossible_folds_are_named(folds, holdout, message):
    with pytest.raises(FoldError) as err:
        walk_forward(START, START + 8 * HOUR, HOUR, folds, holdout)
    assert str(err.value) == message
