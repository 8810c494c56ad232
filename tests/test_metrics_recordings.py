"""Dataset statistics, Bland-Altman, chunk reassembly and whole-recording evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrphys.metrics import (
    SignalError,
    WindowTooShortError,
    assemble_recordings,
    bland_altman,
    evaluate_recordings,
    summarize,
    waveform_rates,
    window_bounds,
    window_rates,
)

FS = 30.0
PRED = np.array([70.0, 82.0, 95.0, 61.0, 100.0])
LABEL = np.array([72.0, 80.0, 90.0, 60.0, 104.0])


def wave(seconds: float, rate: float, fs: float = FS) -> np.ndarray:
    return np.sin(2 * np.pi * rate / 60 * np.arange(int(round(seconds * fs))) / fs)


def test_summarize_reference_formulas():
    e = PRED - LABEL
    n = len(e)
    toolbox = summarize(PRED, LABEL, snr=[1.0, 2.0, 3.0, 4.0, 5.0], macc=[0.5] * 5, profile="rppg-toolbox")
    assert toolbox.profile == "rppg-toolbox" and toolbox.task == "bvp"
    assert toolbox["MAE"] == pytest.approx(np.mean(np.abs(e)))
    assert toolbox["MAE_SE"] == pytest.approx(np.std(np.abs(e)) / math.sqrt(n))
    assert toolbox["RMSE"] == pytest.approx(math.sqrt(np.mean(e**2)))
    assert toolbox["RMSE_SE"] == pytest.approx(math.sqrt(np.std(e**2) / math.sqrt(n)))
    assert toolbox["MAPE"] == pytest.approx(100 * np.mean(np.abs(e / LABEL)))
    r = np.corrcoef(PRED, LABEL)[0, 1]
    assert toolbox["Pearson"] == pytest.approx(r)
    assert toolbox["Pearson_SE"] == pytest.approx(math.sqrt((1 - r**2) / (n - 2)))
    assert toolbox["SNR"] == 3.0 and toolbox["SNR_SE"] == pytest.approx(np.std([1, 2, 3, 4, 5]) / math.sqrt(5))
    assert toolbox["MACC"] == 0.5 and toolbox["MACC_SE"] == 0.0
    mmrphys = summarize(PRED, LABEL, profile="mmrphys")
    assert mmrphys["RMSE_SE"] == pytest.approx(math.sqrt(np.std(e**2)) / math.sqrt(n))
    assert mmrphys["SNR"] is None and mmrphys["MACC"] is None
    bigsmall = summarize(PRED, LABEL, macc=[0.5] * 5, profile="rppg-toolbox", task="rsp")
    assert bigsmall["RMSE_SE"] == pytest.approx(np.std(e**2) / math.sqrt(n))
    assert bigsmall["MACC"] is None  # the Toolbox's RSP path defines no MACC


def test_summarize_default_uses_sample_sd_and_the_delta_method():
    e = PRED - LABEL
    n = len(e)
    default = summarize(PRED, LABEL)
    assert default.profile == "default"
    assert default["MAE_SE"] == pytest.approx(np.std(np.abs(e), ddof=1) / math.sqrt(n))
    rmse = math.sqrt(np.mean(e**2))
    assert default["RMSE_SE"] == pytest.approx(np.std(e**2, ddof=1) / (2 * rmse * math.sqrt(n)))


def test_summarize_nan_rates_propagate_in_references_and_are_counted_in_default():
    pred = np.append(PRED, np.nan)
    label = np.append(LABEL, 75.0)
    assert math.isnan(summarize(pred, label, profile="rppg-toolbox")["MAE"])
    default = summarize(pred, label)
    assert default["n"] == 5 and default["n_invalid"] == 1
    assert default["MAE"] == pytest.approx(np.mean(np.abs(PRED - LABEL)))


def test_summarize_small_and_degenerate_inputs():
    one = summarize([70.0], [72.0])
    assert one["MAE"] == 2.0 and math.isnan(one["Pearson"]) and math.isnan(one["MAE_SE"])
    constant = summarize([70.0, 70.0, 70.0], [72.0, 73.0, 74.0])
    assert math.isnan(constant["Pearson"])
    with pytest.raises(ValueError, match="3 predicted rates but 2 label rates"):
        summarize([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="snr has 2 values"):
        summarize([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], snr=[1.0, 2.0])
    with pytest.raises(ValueError, match="no rates to summarize"):
        summarize([], [])
    collapsed = summarize([np.nan, np.nan], [72.0, 80.0], snr=[np.nan, np.nan], macc=[np.nan, np.nan])
    assert collapsed["n"] == 0 and collapsed["n_invalid"] == 2
    assert math.isnan(collapsed["MAE"]) and math.isnan(collapsed["MACC"]) and math.isnan(collapsed["Pearson_SE"])
    assert summarize([np.nan], [72.0], task="rsp", profile="default")["SNR"] is None


def test_bland_altman_reference_and_default():
    ref = bland_altman(PRED, LABEL, profile="mmrphys")
    d = LABEL - PRED
    sd = np.std(d, ddof=1)
    assert ref["BA_bias"] == pytest.approx(d.mean())
    assert ref["BA_loa_upper"] == pytest.approx(d.mean() + 1.96 * math.sqrt(2) * sd)
    default = bland_altman(PRED, LABEL)
    assert default["BA_bias"] == pytest.approx(-d.mean())
    assert default["BA_loa_lower"] == pytest.approx(-d.mean() - 1.96 * sd)


def test_assemble_recordings_orders_chunks_and_standardises_like_mmrphys():
    ids = ["b", "a", "a", "b", "a"]
    chunks = [1, 2, 0, 0, 1]
    values = [np.full(3, 10.0 * c + i) for i, c in enumerate(chunks)]
    out = assemble_recordings(ids, chunks, values)
    assert list(out) == ["b", "a"]
    np.testing.assert_array_equal(out["a"], np.concatenate([values[2], values[4], values[1]]))
    ramp = [np.arange(4.0)[:, None] * 2, np.full((4, 1), 5.0)]
    standardised = assemble_recordings(["r", "r"], [0, 1], ramp, zscore_chunks=True)["r"]
    x = np.arange(4.0) * 2
    np.testing.assert_allclose(standardised[:4], (x - x.mean()) / x.std(ddof=1))
    np.testing.assert_array_equal(standardised[4:], 5.0)  # std <= 0.001: left unchanged


def test_assemble_recordings_bad_input():
    with pytest.raises(ValueError, match="chunks \\[1\\] are missing"):
        assemble_recordings(["r", "r"], [0, 2], [np.ones(3), np.ones(3)])
    assert assemble_recordings(["r", "r"], [0, 2], [np.ones(3), np.ones(3)], on_gap="concatenate")["r"].size == 6
    with pytest.raises(ValueError, match="chunk 0 appears twice"):
        assemble_recordings(["r", "r"], [0, 0], [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="same length"):
        assemble_recordings(["r"], [0, 1], [np.ones(3)])
    with pytest.raises(ValueError, match="expected shape"):
        assemble_recordings(["r"], [0], [np.ones((3, 2))])


def test_window_bounds_match_the_references():
    assert window_bounds(100, None) == [(0, 100)]
    assert window_bounds(100, 300) == [(0, 100)]
    assert window_bounds(100, 30) == [(0, 30), (30, 60), (60, 90), (90, 100)]


def recordings(rates: dict[str, float], seconds: float, task: str = "bvp", noise: float = 0.3):
    rng = np.random.default_rng(0)
    labels = {rec: wave(seconds, rate) for rec, rate in rates.items()}
    preds = {rec: sig + rng.normal(scale=noise, size=sig.size) for rec, sig in labels.items()}
    return {task: preds}, {task: labels}


def test_evaluate_recordings_per_recording_and_windows_agree_with_window_rates():
    preds, labels = recordings({"s1": 66.0, "s2": 84.0, "s3": 100.0}, 40)
    for profile in ("default", "rppg-toolbox", "mmrphys"):
        whole = evaluate_recordings(preds, labels, FS, tasks=("bvp",), profile=profile)
        assert whole.profile == profile and whole.summary["bvp"]["n"] == 3
        for row in whole.per_recording:
            one = window_rates(preds["bvp"][row["recording_id"]], labels["bvp"][row["recording_id"]], FS, profile=profile)
            assert (row["rate_pred"], row["rate_label"]) == (one.rate_pred, one.rate_label)
            assert row["snr"] == pytest.approx(one.snr, abs=1e-9)
        windowed = evaluate_recordings(preds, labels, FS, tasks=("bvp",), window_seconds=15, profile=profile)
        rows = [r for r in windowed.per_recording if r["recording_id"] == "s2"]
        assert [(r["start_s"], r["seconds"]) for r in rows] == [(0.0, 15.0), (15.0, 15.0), (30.0, 10.0)]
        tail = window_rates(preds["bvp"]["s2"][900:], labels["bvp"]["s2"][900:], FS, profile=profile)
        assert rows[2]["rate_pred"] == tail.rate_pred


def test_default_skips_a_short_tail_and_records_why():
    preds, labels = recordings({"s1": 72.0}, 32)
    windowed = evaluate_recordings(preds, labels, FS, tasks=("bvp",), window_seconds=10)
    assert [r["window"] for r in windowed.per_recording] == [0, 1, 2]
    assert windowed.skipped == [
        {"recording_id": "s1", "task": "bvp", "window": 3, "samples": 60,
         "reason": "trailing window of 60 samples is under 50% of the window"}
    ]


def test_reference_short_tail_windows_skip_below_9_and_fail_clearly_above():
    # docs/evaluation.md bug 1: the references skip N < 9 but crash on 9-15 samples (order-2 filtfilt)
    for tail, outcome in [(8, "skipped"), (12, "error"), (16, "ok")]:
        preds, labels = recordings({"s1": 72.0}, (300 + tail) / FS)
        if outcome == "error":
            with pytest.raises(WindowTooShortError, match="recording 's1' window 1: 12 samples"):
                evaluate_recordings(preds, labels, FS, tasks=("bvp",), window_seconds=10, profile="mmrphys")
            continue
        result = evaluate_recordings(preds, labels, FS, tasks=("bvp",), window_seconds=10, profile="mmrphys")
        assert len(result.per_recording) == (1 if outcome == "skipped" else 2)
        assert len(result.skipped) == (1 if outcome == "skipped" else 0)


def test_toolbox_rsp_windows_repeat_the_whole_recording():
    # docs/evaluation.md bug 2: BigSmall scores the whole video for every window -> identical rows
    rng = np.random.default_rng(1)
    t = np.arange(int(60 * FS)) / FS
    label = np.sin(2 * np.pi * np.cumsum(np.linspace(0.2, 0.35, t.size)) / FS)
    preds = {"rsp": {"s1": label + rng.normal(scale=0.5, size=t.size)}}
    labels = {"rsp": {"s1": label}}
    toolbox = evaluate_recordings(preds, labels, FS, tasks=("rsp",), window_seconds=20, profile="rppg-toolbox")
    rates = {(r["rate_pred"], r["rate_label"]) for r in toolbox.per_recording}
    assert len(toolbox.per_recording) == 3 and len(rates) == 1
    assert math.isnan(toolbox.summary["rsp"]["Pearson"])
    mmrphys = evaluate_recordings(preds, labels, FS, tasks=("rsp",), window_seconds=20, profile="mmrphys")
    assert len({r["rate_label"] for r in mmrphys.per_recording}) == 3


def test_evaluate_recordings_per_recording_fs_and_both_tasks():
    bvp = {"a": wave(30, 72, 30.0), "b": wave(30, 90, 25.0)}
    rsp = {"a": wave(30, 15, 30.0), "b": wave(30, 20, 25.0)}
    result = evaluate_recordings({"bvp": bvp, "rsp": rsp}, {"bvp": bvp, "rsp": rsp}, {"a": 30.0, "b": 25.0})
    rates = {(r["task"], r["recording_id"]): r["rate_label"] for r in result.per_recording}
    assert rates[("bvp", "b")] == pytest.approx(90, abs=0.25)
    assert rates[("rsp", "b")] == pytest.approx(20, abs=0.25)
    assert set(result.summary) == {"bvp", "rsp"}
    assert result.to_dict()["summary"]["bvp"]["MAE"] == 0.0


def test_evaluate_recordings_bad_input_names_the_recording():
    preds, labels = recordings({"s1": 72.0, "s2": 80.0}, 20)
    broken = {"bvp": dict(preds["bvp"], s2=np.append(preds["bvp"]["s2"][:-1], np.nan))}
    with pytest.raises(SignalError, match="bvp prediction of recording 's2': 1 NaN"):
        evaluate_recordings(broken, labels, FS, tasks=("bvp",))
    short = {"bvp": dict(preds["bvp"], s2=preds["bvp"]["s2"][:-5])}
    with pytest.raises(SignalError, match="recording 's2': prediction shape \\(595,\\) and label shape \\(600,\\)"):
        evaluate_recordings(short, labels, FS, tasks=("bvp",))
    with pytest.raises(ValueError, match="without prediction \\['s2'\\]"):
        evaluate_recordings({"bvp": {"s1": preds["bvp"]["s1"]}}, labels, FS, tasks=("bvp",))
    with pytest.raises(ValueError, match="task 'rsp' missing from predictions"):
        evaluate_recordings(preds, labels, FS, tasks=("rsp",))
    with pytest.raises(ValueError, match="no sampling rate"):
        evaluate_recordings(preds, labels, {"s1": 30.0}, tasks=("bvp",))
    with pytest.raises(SignalError, match="fs=4.0 Hz is out of range for bvp recording 's1'"):
        evaluate_recordings(preds, labels, 4.0, tasks=("bvp",))
    with pytest.raises(ValueError, match="window_seconds must be a positive"):
        evaluate_recordings(preds, labels, FS, tasks=("bvp",), window_seconds=0)
    constant = {"bvp": dict(labels["bvp"], s2=np.ones(600))}
    with pytest.raises(SignalError, match="bvp label of recording 's2' is constant"):
        evaluate_recordings(preds, constant, FS, tasks=("bvp",))
    no_bins = {"rsp": {"s1": preds["bvp"]["s1"][:16]}}, {"rsp": {"s1": labels["bvp"]["s1"][:16]}}
    with pytest.raises(SignalError, match="rsp windows of 16 samples at 30.0 Hz \\(s1#0\\): no spectral bin"):
        evaluate_recordings(*no_bins, FS, tasks=("rsp",), profile="mmrphys")


def test_recordings_too_short_for_the_profile_give_nan_metrics_and_reasons():
    preds, labels = recordings({"s1": 15.0, "s2": 20.0}, 20, task="rsp")
    result = evaluate_recordings(preds, labels, FS, tasks=("rsp",), window_seconds=10)
    assert result.per_recording == [] and result.summary["rsp"]["n"] == 0
    assert math.isnan(result.summary["rsp"]["MAE"]) and math.isnan(result.summary["rsp"]["BA_bias"])
    assert len(result.skipped) == 4
    assert result.skipped[0]["reason"] == "300 samples (10.0 s), fewer than the 360 (12.0 s) rsp windows need under this profile"


def test_a_constant_model_is_reported_not_fatal():
    preds, labels = recordings({"s1": 72.0, "s2": 80.0}, 20)
    flat = {"bvp": {rec: np.zeros_like(x) for rec, x in preds["bvp"].items()}}
    result = evaluate_recordings(flat, labels, FS, tasks=("bvp",))
    assert result.summary["bvp"]["n_invalid"] == 2 and math.isnan(result.summary["bvp"]["MAE"])
    assert all(r["flags"] == "constant_prediction" for r in result.per_recording)


def test_waveform_rates_without_labels():
    rows = np.stack([wave(20, 66), wave(20, 120), np.zeros(600)])
    rates = waveform_rates(rows, FS)
    assert rates[0] == pytest.approx(66, abs=0.25) and rates[1] == pytest.approx(120, abs=0.25)
    assert math.isnan(rates[2])
    assert waveform_rates(wave(40, 15), FS, task="rsp") == pytest.approx(15, abs=0.25)
    assert math.isnan(waveform_rates(wave(1, 66), FS))
    assert np.isnan(waveform_rates(np.stack([wave(6, 15)] * 2), FS, task="rsp")).all()
    with pytest.raises(SignalError, match="bvp waveform: 1 NaN"):
        waveform_rates(np.append(wave(10, 66), np.nan), FS)
