"""Chunk boundaries, chunk validation, label-derived rates and per-chunk z-scoring."""

from __future__ import annotations

import numpy as np
import pytest

from mmrphys.data.chunking import check_chunk, chunk_starts, label_rate
from mmrphys.signals import standardize_chunks


def test_chunk_starts_with_and_without_overlap():
    assert chunk_starts(400, 180) == [0, 180]
    assert chunk_starts(400, 180, overlap=90) == [0, 90, 180]
    assert chunk_starts(100, 180) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_starts(400, 180, overlap=180)


def test_label_rates_from_the_spectral_peak():
    t = np.arange(180) / 30.0
    assert abs(label_rate(np.sin(2 * np.pi * 1.2 * t), 30.0, "bvp") - 72.0) < 1.0
    assert abs(label_rate(np.sin(2 * np.pi * 0.25 * t), 30.0, "rsp") - 15.0) < 1.5


def test_check_chunk_reasons():
    good = {"bvp": np.sin(np.arange(40.0))}
    assert check_chunk(good, np.ones(40, bool), 0.5) is None
    assert check_chunk({"bvp": np.r_[np.nan, np.ones(39)]}, None, 0.5) == "bvp labels have 1 NaN/inf of 40 samples"
    assert check_chunk({"rsp": np.ones(40)}, None, 0.5) == "rsp labels are constant"
    found = np.r_[np.ones(10, bool), np.zeros(30, bool)]
    assert check_chunk(good, found, 0.5) == "no face detected in 75% of frames (limit 50%)"
    assert check_chunk(good, None, 0.5, np.full(40, 0.2), 0.3) == "signal quality 0.20 below 0.30"
    assert check_chunk(good, None, 0.5, np.full(40, 0.9), 0.3) is None


def test_standardize_chunks_matches_the_reference_unbiased_zscore():
    x = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    z = standardize_chunks(x)
    assert z.dtype == np.float32
    assert np.allclose(z[0], (x[0] - x[0].mean()) / x[0].std(ddof=1))
    assert np.allclose(z[1], 0.0)  # a constant row cannot be scaled; it stays centred
