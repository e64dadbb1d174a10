import numpy as np
import pytest

from bot.core.ring import RingPanel


def rows(first: int, n: int, width: int = 2, fields: int = 3) -> np.ndarray:
    base = np.arange(first, first + n, dtype=float)[:, None, None]
    return base + np.zeros((n, width, fields)) + np.arange(width)[None, :, None] * 1000


def test_windows_are_zero_copy_views_of_the_latest_rows_across_wraparound():
    ring = RingPanel(n_symbols=2, capacity=5, n_fields=3)
    ring.append(np.arange(-3, 0), rows(-3, 3), np.ones((3, 2), bool))
    for start in range(0, 23, 3):  # uneven appends force every wrap position
        ring.append(np.arange(start, start + 3), rows(start, 3), np.ones((3, 2), bool))
        window = ring.values(4)
        assert window.shape == (2, 4, 3)
        assert np.shares_memory(window, ring._values)  # a view, not a copy
        newest = start + 2
        np.testing.assert_array_equal(window[0, :, 0], np.arange(newest - 3, newest + 1))
        np.testing.assert_array_equal(window[1, :, 0], np.arange(newest - 3, newest + 1) + 1000)
        np.testing.assert_array_equal(ring.times(4), np.arange(newest - 3, newest + 1))


def test_windows_are_read_only():
    ring = RingPanel(1, 4, 1)
    ring.append(np.arange(3), np.zeros((3, 1, 1)), np.ones((3, 1), bool))
    with pytest.raises(ValueError):
        ring.values(2)[0, 0, 0] = 1.0


def test_window_ending_at_an_earlier_row_and_eviction():
    ring = RingPanel(1, 6, 1)
    ring.append(np.arange(10), rows(0, 10, width=1, fields=1), np.ones((10, 1), bool))
    np.testing.assert_array_equal(ring.values(3, end=7)[0, :, 0], [5, 6, 7])
    with pytest.raises(IndexError, match="no longer in a ring"):
        ring.values(3, end=5)  # row 3 was overwritten (only rows 4..9 remain)
    with pytest.raises(IndexError, match="not been appended"):
        ring.values(1, end=10)


def test_short_history_gives_shorter_window():
    ring = RingPanel(1, 8, 1)
    ring.append(np.arange(2), rows(0, 2, 1, 1), np.ones((2, 1), bool))
    assert ring.values(5).shape == (1, 2, 1)


def test_block_larger_than_capacity_keeps_the_tail():
    ring = RingPanel(1, 4, 1)
    ring.append(np.arange(10), rows(0, 10, 1, 1), np.ones((10, 1), bool))
    assert ring.count == 10
    np.testing.assert_array_equal(ring.values(4)[0, :, 0], [6, 7, 8, 9])


def test_patch_and_find_row():
    ring = RingPanel(2, 4, 1)
    present = np.array([[True, False]] * 3)
    ring.append(np.array([100, 200, 300]), rows(0, 3, 2, 1), present)
    row = ring.find_row(200)
    assert row == 1
    assert ring.patch(row, 1, np.array([42.0]))
    assert ring.values(3)[1, 1, 0] == 42.0
    assert ring.present(3)[1].tolist() == [False, True, False]
    assert ring.find_row(250) is None
