"""Features, defined once and computed two ways: in batch over history and step by step live.

Each feature is one class with both executions:

* ``batch(ohlcv[T, A, 5], funding[T, A]) -> [T, A]`` for training and backtests, vectorised;
* ``update(bar[A, 5], funding[A]) -> [A]`` for a live stream, O(1) per bar.

Finite-window features (rolling means, standard deviations, ratios) read the same window with
the same numpy reduction in both; recursive ones (EMA-based MACD, Wilder's RSI) run the same
per-step formula in both. So the two agree exactly from the same starting bar, and to 1e-9
from different starting bars once :attr:`FeatureSpec.warmup` bars have passed (the influence of
an EMA's initial value decays below 1e-9 well within it). Values are NaN until a feature has
the history it needs.

A model decides on a window of feature rows, and a backtest must compute exactly the window
the live bot computed, whichever replay block or run the decision falls in. So a window's
features start from an **anchor** that depends only on bar times: the first bar at or after the
latest multiple of ``anchor_period`` bar intervals since the epoch that lies at least
``warmup`` bars before the window (:meth:`FeatureSpec.anchors`). A backtest computes each
anchor's recursion once for all the decisions that use it (:meth:`FeatureSpec.windows`); the
live bot carries every anchor's recursion forward one bar at a time
(:class:`DecisionFeatures`): the same steps on the same bars, so the same bits.

The default set is the cross-asset chapter's six (log return, intraday return, range, relative
volume, RSI(14), MACD); the others (volatility, momentum, close position, MA ratios, funding
rate) are named in a :class:`FeatureSpec`. Order-book features come from book snapshots in
FI-2010 column order (:func:`orderbook_features`).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)
WINDOW_CHUNK = 256  # anchors featurised per pass (bounds the memory of a backtest)
#: Bars between the anchors recursive features restart from. Larger: fewer recursions to carry
#: live (about 1 + (window + warm-up) / this many), but as many more bars of history needed.
ANCHOR_PERIOD = 256
DEFAULT_FEATURES = (
    "log_return", "intraday_return", "range", "relative_volume", "rsi_14", "macd",
)  # fmt: skip
ALL_FEATURES = (
    *DEFAULT_FEATURES, "volatility", "momentum_5", "momentum_10", "close_position",
    "ma_ratio_5", "ma_ratio_10", "ma_ratio_20", "ma_ratio_50", "funding_rate",
)  # fmt: skip


class Feature:
    """One feature: ``batch`` over history, ``update`` one bar at a time (same definition)."""

    name: str
    window: int = 1  # bars of history the first value needs
    recursive: bool = False  # EMA-like: values depend on where the recursion started

    def batch(self, ohlcv: np.ndarray, funding: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, bar: np.ndarray, funding: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _rolling(values: np.ndarray, window: int, reduce) -> np.ndarray:
    """``reduce`` over each window of ``window`` rows ending at every row (NaN before)."""
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        # contiguous windows: numpy's summation order depends on memory layout, and the live
        # side reduces contiguous rows, so this keeps the two bit for bit the same
        views = np.ascontiguousarray(sliding_window_view(values, window, axis=0))
        out[window - 1 :] = reduce(views)
    return out


class _Window:
    """The last ``size`` rows, oldest first, as one array (the live side of ``_rolling``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: deque[np.ndarray] = deque(maxlen=size)

    def push(self, row: np.ndarray) -> np.ndarray | None:
        self._rows.append(np.asarray(row, dtype=float))
        if len(self._rows) < self.size:
            return None
        return np.stack(self._rows, axis=-1)  # [A, w]: the layout sliding_window_view gives


def _mean(views: np.ndarray) -> np.ndarray:
    return views.mean(axis=-1)


def _std(views: np.ndarray) -> np.ndarray:
    return views.std(axis=-1, ddof=1)


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(numerator / denominator)


class LogReturn(Feature):
    name = "log_return"
    window = 2

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def batch(self, ohlcv, funding):
        close = ohlcv[:, :, CLOSE]
        out = np.full(close.shape, np.nan)
        out[1:] = _log_ratio(close[1:], close[:-1])
        return out

    def update(self, bar, funding):
        close = bar[:, CLOSE]
        out = (
            np.full(close.shape, np.nan)
            if self._previous is None
            else _log_ratio(close, self._previous)
        )
        self._previous = close.copy()
        return out


class IntradayReturn(Feature):
    name = "intraday_return"

    def batch(self, ohlcv, funding):
        return _log_ratio(ohlcv[:, :, CLOSE], ohlcv[:, :, OPEN])

    def update(self, bar, funding):
        return _log_ratio(bar[:, CLOSE], bar[:, OPEN])


class Range(Feature):
    name = "range"

    def batch(self, ohlcv, funding):
        return (ohlcv[:, :, HIGH] - ohlcv[:, :, LOW]) / ohlcv[:, :, CLOSE]

    def update(self, bar, funding):
        return (bar[:, HIGH] - bar[:, LOW]) / bar[:, CLOSE]


class ClosePosition(Feature):
    """Where the close sits in the bar's range (0 = low, 1 = high; 0.5 for a flat bar)."""

    name = "close_position"

    def batch(self, ohlcv, funding):
        return self._position(ohlcv[:, :, CLOSE], ohlcv[:, :, HIGH], ohlcv[:, :, LOW])

    def update(self, bar, funding):
        return self._position(bar[:, CLOSE], bar[:, HIGH], bar[:, LOW])

    @staticmethod
    def _position(close, high, low):
        span = high - low
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(span > 0, (close - low) / span, 0.5)


class _WindowFeature(Feature):
    """A feature of the last ``window`` values of one input column."""

    reduce = staticmethod(_mean)

    def __init__(self) -> None:
        self._live = _Window(self.window)

    def source(self, ohlcv: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def finish(self, reduced: np.ndarray, current: np.ndarray) -> np.ndarray:
        return reduced

    def batch(self, ohlcv, funding):
        values = self.source(ohlcv)
        return self.finish(_rolling(values, self.window, self.reduce), values)

    def update(self, bar, funding):
        value = self.source(bar[None])[0]
        views = self._live.push(value)
        if views is None:
            return np.full(value.shape, np.nan)
        return self.finish(self.reduce(views), value)


class RelativeVolume(_WindowFeature):
    """Volume over its 20-bar mean (the mean includes the current bar)."""

    name = "relative_volume"
    window = 20

    def source(self, ohlcv):
        return ohlcv[..., VOLUME]

    def finish(self, reduced, current):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(reduced > 0, current / reduced, np.nan)


class MovingAverageRatio(_WindowFeature):
    """Close over its ``k``-bar simple moving average, minus one."""

    def __init__(self, k: int) -> None:
        self.window = k
        self.name = f"ma_ratio_{k}"
        super().__init__()

    def source(self, ohlcv):
        return ohlcv[..., CLOSE]

    def finish(self, reduced, current):
        return current / reduced - 1.0


class Momentum(Feature):
    """Close over the close ``k`` bars earlier, minus one."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.window = k + 1
        self.name = f"momentum_{k}"
        self._closes: deque[np.ndarray] = deque(maxlen=k + 1)

    def batch(self, ohlcv, funding):
        close = ohlcv[:, :, CLOSE]
        out = np.full(close.shape, np.nan)
        out[self.k :] = close[self.k :] / close[: -self.k] - 1.0
        return out

    def update(self, bar, funding):
        self._closes.append(bar[:, CLOSE].copy())
        if len(self._closes) <= self.k:
            return np.full(bar.shape[0], np.nan)
        return self._closes[-1] / self._closes[0] - 1.0


class Volatility(Feature):
    """Sample standard deviation of the last 20 log returns."""

    name = "volatility"
    window = 21

    def __init__(self) -> None:
        self._returns = LogReturn()
        self._live = _Window(20)

    def batch(self, ohlcv, funding):
        return _rolling(self._returns.batch(ohlcv, funding), 20, _std)

    def update(self, bar, funding):
        views = self._live.push(self._returns.update(bar, funding))
        return np.full(bar.shape[0], np.nan) if views is None else _std(views)


class _Ema:
    """EMA with smoothing ``alpha``, seeded with the first value it sees; the same step in
    batch (a loop over time, vectorised over assets) and live."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value: np.ndarray | None = None

    def step(self, x: np.ndarray) -> np.ndarray:
        if self.value is None:
            self.value = x.copy()
        else:
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        return self.value

    def run(self, series: np.ndarray) -> np.ndarray:
        out = np.empty(series.shape)
        for t in range(len(series)):
            out[t] = self.step(series[t])
        return out


class Macd(Feature):
    """(EMA12 − EMA26) of the close, as a fraction of the close (scale-free across assets)."""

    name = "macd"
    window = 26
    recursive = True

    def __init__(self) -> None:
        self._fast, self._slow = _Ema(2 / 13), _Ema(2 / 27)
        self._seen = 0

    def batch(self, ohlcv, funding):
        close = ohlcv[:, :, CLOSE]
        fast, slow = _Ema(2 / 13).run(close), _Ema(2 / 27).run(close)
        out = (fast - slow) / close
        out[: self.window - 1] = np.nan
        return out

    def update(self, bar, funding):
        close = bar[:, CLOSE]
        value = (self._fast.step(close) - self._slow.step(close)) / close
        self._seen += 1
        return value if self._seen >= self.window else np.full(close.shape, np.nan)


class Rsi(Feature):
    """Wilder's RSI(14), scaled to [-1, 1] ((RSI − 50) / 50)."""

    name = "rsi_14"
    period = 14
    window = 15
    recursive = True

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._gains: list[np.ndarray] = []
        self._losses: list[np.ndarray] = []
        self._avg: tuple[np.ndarray, np.ndarray] | None = None

    def batch(self, ohlcv, funding):
        live = Rsi()
        return np.stack([live.update(ohlcv[t], funding[t]) for t in range(len(ohlcv))])

    def update(self, bar, funding):
        close = bar[:, CLOSE]
        previous, self._previous = self._previous, close.copy()
        nan = np.full(close.shape, np.nan)
        if previous is None:
            return nan
        change = close - previous
        gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
        if self._avg is None:
            self._gains.append(gain)
            self._losses.append(loss)
            if len(self._gains) < self.period:
                return nan
            self._avg = (np.mean(self._gains, axis=0), np.mean(self._losses, axis=0))
        else:
            n = self.period
            self._avg = ((self._avg[0] * (n - 1) + gain) / n, (self._avg[1] * (n - 1) + loss) / n)
        up, down = self._avg
        total = up + down
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, (up - down) / total, 0.0)  # == (RSI - 50) / 50


class FundingRate(Feature):
    """The latest settled funding rate known at the bar's close (0 before the first)."""

    name = "funding_rate"

    def batch(self, ohlcv, funding):
        return np.nan_to_num(funding, nan=0.0)

    def update(self, bar, funding):
        return np.nan_to_num(funding, nan=0.0)


def _make(name: str) -> Feature:
    simple = {c.name: c for c in (LogReturn, IntradayReturn, Range, ClosePosition,
                                  RelativeVolume, Volatility, Macd, Rsi, FundingRate)}  # fmt: skip
    if name in simple:
        return simple[name]()
    kind, _, size = name.rpartition("_")
    if kind == "momentum" and size.isdigit():
        return Momentum(int(size))
    if kind == "ma_ratio" and size.isdigit():
        return MovingAverageRatio(int(size))
    raise ValueError(f"unknown feature {name!r}; known: {', '.join(ALL_FEATURES)}")


@dataclass(frozen=True)
class FeatureSpec:
    """Which features, in which order. Its :meth:`digest` is stored in checkpoints, so a model
    is never fed features other than those it was trained on."""

    names: tuple[str, ...] = DEFAULT_FEATURES
    version: int = 1  # bump when a feature's definition changes
    features: tuple[Feature, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(_make(n) for n in self.names))

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def warmup(self) -> int:
        """Bars after which values no longer depend on where the computation started (to
        1e-9): the longest window, or 600 bars when an EMA is involved ((25/27)^600 ≈ 1e-20)."""
        longest = max(f.window for f in self.features)
        return max(longest, 600) if any(f.recursive for f in self.features) else longest

    def to_dict(self) -> dict:
        return {"names": list(self.names), "version": self.version}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(tuple(data["names"]), int(data["version"]))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def batch(self, ohlcv: np.ndarray, funding: np.ndarray | None = None) -> np.ndarray:
        """``[T, A, F]`` features of ``ohlcv[T, A, 5]`` (funding ``[T, A]``, forward-filled)."""
        if funding is None:
            funding = np.zeros(ohlcv.shape[:2])
        fresh = FeatureSpec(self.names, self.version)  # batch runs use no live state
        return np.stack([f.batch(ohlcv, funding) for f in fresh.features], axis=-1)

    @property
    def anchor_period(self) -> int:
        """Bars between the anchors a window's features start from: :data:`ANCHOR_PERIOD` with
        a recursive feature; 1 without one (a window then starts exactly ``warmup`` bars
        before its first row: finite windows need no more, and their short recomputation
        costs less than carrying a recursion per window live)."""
        return ANCHOR_PERIOD if any(f.recursive for f in self.features) else 1

    @property
    def lead(self) -> int:
        """Bars of history a decision window needs before its first row: the warm-up, and up
        to ``anchor_period - 1`` more back to its anchor."""
        return self.warmup + self.anchor_period - 1

    def anchors(
        self, starts: np.ndarray, ends: np.ndarray, length: int, interval_ms: int
    ) -> np.ndarray:
        """The row of each window's anchor (see the module docstring): the first bar at or
        after the latest multiple of ``anchor_period × interval_ms`` (epoch ms) that is at
        most the start of the bar ``warmup`` rows before the window (``length`` rows ending at
        each of ``ends``; bar open times ``starts``). A function of bar times only."""
        grid = self.anchor_period * interval_ms
        latest = np.asarray(starts[np.asarray(ends) - length + 1 - self.warmup], dtype=np.int64)
        return np.searchsorted(starts, latest - latest % grid)

    def windows(
        self,
        ohlcv: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        length: int,
        interval_ms: int,
    ) -> np.ndarray:
        """``[B, length, A, F]``: the features of the ``length`` rows ending at each of ``ends``
        of ``ohlcv[T, A, 5]`` (bar open times ``starts``), each computed from its anchor on.

        A decision's inputs then depend on bar times and on the bars from its anchor to its
        end only, never on the other windows of the pass or on where the history begins, so a
        block of decisions computed at once equals the same decisions computed one at a time,
        bit for bit: the anchors' recursions run side by side as columns and every feature
        works column by column. Bars missing after an anchor are filled from the previous
        close since the anchor (:func:`fill_gaps`)."""
        span = length + self.lead
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) and ends.min() < span - 1:
            raise ValueError(f"a window needs {span} bars; row {ends.min()} has fewer before it")
        n_assets = ohlcv.shape[1]
        out = np.empty((len(ends), length, n_assets, self.size), dtype=np.float64)
        if not len(ends):
            return out
        firsts, anchor_of = np.unique(
            self.anchors(starts, ends, length, interval_ms), return_inverse=True
        )
        lasts = np.zeros(len(firsts), dtype=np.int64)
        np.maximum.at(lasts, anchor_of, ends)
        for lo in range(0, len(firsts), WINDOW_CHUNK):
            first, last = firsts[lo : lo + WINDOW_CHUNK], lasts[lo : lo + WINDOW_CHUNK]
            rows = int((last - first).max()) + 1
            # past an anchor's last decision: whatever bars follow (no feature looks ahead)
            index = np.minimum(first[:, None] + np.arange(rows), len(ohlcv) - 1)
            stacked = ohlcv[index].transpose(1, 0, 2, 3).reshape(rows, len(first) * n_assets, 5)
            features = self.batch(fill_gaps(stacked)).reshape(rows, len(first), n_assets, -1)
            mine = np.flatnonzero((anchor_of >= lo) & (anchor_of < lo + len(first)))
            column = anchor_of[mine] - lo
            offset = ends[mine] - length + 1 - first[column]  # window start, from the anchor
            out[mine] = features[offset[:, None] + np.arange(length), column[:, None]]
        return out

    def stream(self) -> FeatureStream:
        return FeatureStream(FeatureSpec(self.names, self.version))


def fill_gaps(ohlcv: np.ndarray) -> np.ndarray:
    """Missing bars (NaN) as flat bars at the previous close with no volume, the way an
    exchange shows a minute without trades; bars before a series' first are left NaN."""
    missing = np.isnan(ohlcv[..., CLOSE])
    if not missing.any():
        return ohlcv
    rows = np.where(missing, 0, np.arange(len(ohlcv))[:, None])
    last = np.maximum.accumulate(rows, axis=0)  # latest present bar (row 0: NaN if missing)
    previous_close = np.take_along_axis(ohlcv[..., CLOSE], last, axis=0)
    filled = ohlcv.copy()
    flat = previous_close[..., None]
    filled[..., :VOLUME] = np.where(missing[..., None], flat, ohlcv[..., :VOLUME])
    filled[..., VOLUME] = np.where(missing, 0.0, ohlcv[..., VOLUME])
    return filled


class FeatureStream:
    """The live side: feed bars one at a time, get that bar's feature row ``[A, F]``."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    def update(self, bar: np.ndarray, funding: np.ndarray | None = None) -> np.ndarray:
        if funding is None:
            funding = np.zeros(bar.shape[0])
        return np.stack([f.update(bar, funding) for f in self.spec.features], axis=-1)


class _AnchorRun:
    """The features from one anchor on, a bar at a time: the live side of one anchor's column
    in :meth:`FeatureSpec.windows` (its gaps filled as :func:`fill_gaps` fills them)."""

    def __init__(self, spec: FeatureSpec, length: int) -> None:
        self.stream = spec.stream()
        self.rows: deque[np.ndarray] = deque(maxlen=length)  # the latest feature rows
        self.fed = 0  # bars consumed from the anchor's bar on
        self._close: np.ndarray | None = None  # latest close since the anchor (NaN: none)

    def feed(self, bars: np.ndarray) -> None:
        """Consume ``bars[n, A, 5]`` (copied: the caller's may be views of a ring buffer)."""
        for view in bars:
            bar = np.array(view, dtype=float)
            if self._close is None:
                self._close = np.full(len(bar), np.nan)
            missing = np.isnan(bar[:, CLOSE])
            if missing.any():
                bar[missing, :VOLUME] = self._close[missing, None]
                bar[missing, VOLUME] = 0.0
            self._close = bar[:, CLOSE].copy()
            self.rows.append(self.stream.update(bar))
        self.fed += len(bars)


class DecisionFeatures:
    """The features of one strategy's decision windows (``length`` rows of bars of
    ``interval_ms``): a replay block's at once, or the live bot's one decision at a time.

    A block goes through :meth:`FeatureSpec.windows`. A single decision (the live path)
    carries each anchor's recursion forward from the previous decision instead of recomputing
    the window and its warm-up: O(anchors alive) feature steps a bar rather than thousands, and
    the same steps on the same bars as the block's columns, so the same bits. The bars consumed
    are checked against the history at every decision; a bar backfilled or corrected since
    makes the recursions restart from the history (as a restarted daemon's do)."""

    def __init__(self, spec: FeatureSpec, length: int, interval_ms: int) -> None:
        self.spec, self.length, self.interval_ms = spec, length, interval_ms
        self._runs: dict[int, _AnchorRun] = {}  # anchor time (epoch ms) → its recursion
        self._seen_starts = np.zeros(0, dtype=np.int64)  # bars the runs consumed, oldest
        self._seen = np.zeros((0, 0, 5))  # anchor's on: their open times and values

    def windows(self, ohlcv: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """``[B, length, A, F]`` for the windows ending at rows ``ends`` of ``ohlcv[T, A, 5]``
        (bar open times ``starts``), as :meth:`FeatureSpec.windows` computes them."""
        ends = np.asarray(ends, dtype=np.int64)
        if len(ends) == 1 and self.spec.anchor_period > 1:
            latest = self._latest(ohlcv, starts, int(ends[0]))
            if latest is not None:
                return latest[None]
        return self.spec.windows(ohlcv, starts, ends, self.length, self.interval_ms)

    def _latest(self, ohlcv: np.ndarray, starts: np.ndarray, end: int) -> np.ndarray | None:
        """The window ending at row ``end`` from the carried recursions; None when they are
        past it already (an earlier decision asked again: the block path answers that)."""
        spec, length = self.spec, self.length
        if end < length + spec.lead - 1:
            return None  # the block path says what is missing
        grid = spec.anchor_period * self.interval_ms
        oldest = int(starts[end - length + 1 - spec.warmup])
        oldest -= oldest % grid
        newest = int(starts[end]) - int(starts[end]) % grid
        for anchor in [a for a in self._runs if a < oldest]:
            del self._runs[anchor]  # no later decision starts from it
        consumed = self._consumed(ohlcv, starts, oldest)
        if consumed is None:
            self._runs.clear()  # restart from the history
        elif consumed > end + 1:
            return None
        for anchor in range(oldest, newest + 1, grid):
            run = self._runs.setdefault(anchor, _AnchorRun(spec, length))
            first = int(np.searchsorted(starts, anchor)) + run.fed
            run.feed(ohlcv[first : end + 1])
        first = int(np.searchsorted(starts, oldest))
        self._seen_starts = np.array(starts[first : end + 1], dtype=np.int64)
        self._seen = np.array(ohlcv[first : end + 1], dtype=float)
        return np.stack(self._runs[oldest].rows)

    def _consumed(self, ohlcv: np.ndarray, starts: np.ndarray, oldest: int) -> int | None:
        """Rows of ``ohlcv`` up to which the runs from ``oldest`` on have consumed its bars
        (0: nothing carried), or None when a bar they consumed differs from the history's."""
        k = int(np.searchsorted(self._seen_starts, oldest))
        seen_starts, seen = self._seen_starts[k:], self._seen[k:]
        if not len(seen_starts) or not self._runs:
            self._runs.clear()
            return 0
        first = int(np.searchsorted(starts, seen_starts[0]))
        stop = first + len(seen_starts)
        same = np.array_equal(starts[first:stop], seen_starts) and np.array_equal(
            ohlcv[first:stop], seen, equal_nan=True
        )
        return stop if same else None


def orderbook_features(book: np.ndarray, levels: int) -> np.ndarray:
    """Features of order-book snapshots ``[T, 4 * L]`` in FI-2010 column order (ask price, ask
    size, bid price, bid size for each level): per snapshot the mid, relative spread, top-level
    size imbalance, and each level's prices as log distance to the mid and sizes as log1p."""
    ask_p, ask_s = book[:, 0::4][:, :levels], book[:, 1::4][:, :levels]
    bid_p, bid_s = book[:, 2::4][:, :levels], book[:, 3::4][:, :levels]
    mid = (ask_p[:, 0] + bid_p[:, 0]) / 2
    spread = (ask_p[:, 0] - bid_p[:, 0]) / mid
    top = bid_s[:, 0] + ask_s[:, 0]
    imbalance = np.where(top > 0, (bid_s[:, 0] - ask_s[:, 0]) / np.where(top > 0, top, 1), 0.0)
    levels_block = np.concatenate(
        [np.log(ask_p / mid[:, None]), np.log1p(ask_s), np.log(bid_p / mid[:, None]),
         np.log1p(bid_s)], axis=1,
    )  # fmt: skip
    return np.column_stack([np.log(mid), spread, imbalance, levels_block])
