from __future__ import annotations

import numpy as np
import pytest

from lmrec.data import IdMap


def test_round_trip_and_first_occurrence_wins():
    m = IdMap(["b", "a", "b", 7])
    assert m.ids == ["b", "a", "7"]  # the repeated "b" keeps index 0; ids are strings
    idx = m.to_index(["a", "7", "b", 7])
    np.testing.assert_array_equal(idx, [1, 2, 0, 2])
    np.testing.assert_array_equal(m.to_ids(idx), ["a", "7", "b", "7"])
    assert m.index("a") == 1 and m.get("zzz") == -1 and "7" in m and 7 in m


def test_growth_keeps_existing_indices():
    m = IdMap(["x", "y"])
    before = m.to_index(["x", "y"])
    out = m.to_index(["z", "x", "w"], unknown="grow")
    np.testing.assert_array_equal(out, [2, 0, 3])
    np.testing.assert_array_equal(m.to_index(["x", "y"]), before)
    assert len(m) == 4
    m.fit_partial(["y", "v"])
    assert m.ids == ["x", "y", "z", "w", "v"]


def test_unknown_ids():
    m = IdMap(["x"])
    np.testing.assert_array_equal(m.to_index(["x", "q"], unknown="missing"), [0, -1])
    with pytest.raises(KeyError, match=r"1 unknown ids, e.g. \['q'\]"):
        m.to_index(["q"])
    with pytest.raises(KeyError, match="unknown id 'q'"):
        m.index("q")
    with pytest.raises(IndexError, match="out of range for IdMap of size 1"):
        m.to_ids([1])


def test_save_load_copy(tmp_path):
    m = IdMap(["ü", "a b", "3"])
    m.save(tmp_path / "ids.json")
    loaded = IdMap.load(tmp_path / "ids.json")
    assert loaded == m and loaded.ids == ["ü", "a b", "3"]
    c = m.copy()
    c.fit_partial(["new"])
    assert len(m) == 3 and len(c) == 4  # copies are independent
    assert m.to_ids(np.empty(0, dtype=np.int64)).shape == (0,)
