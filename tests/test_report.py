"""Report files: plots written and non-empty, tables that round-trip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mmrphys.metrics import evaluate_recordings
from mmrphys.report import bland_altman_figure, waveforms_figure, write_report

FS = 30.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def signals():
    rng = np.random.default_rng(0)
    t = np.arange(int(40 * FS)) / FS
    labels = {
        "bvp": {f"s{i}": np.sin(2 * np.pi * (1.0 + 0.2 * i) * t) for i in range(3)},
        "rsp": {f"s{i}": np.sin(2 * np.pi * (0.2 + 0.05 * i) * t) for i in range(3)},
    }
    preds = {task: {rec: x + rng.normal(scale=0.5, size=x.size) for rec, x in recs.items()} for task, recs in labels.items()}
    return preds, labels


@pytest.mark.parametrize("profile", ["default", "rppg-toolbox"])
def test_write_report_writes_plots_and_tables(tmp_path, signals, profile):
    preds, labels = signals
    evaluation = evaluate_recordings(preds, labels, FS, window_seconds=20, profile=profile)
    waveforms = {t: {rec: (preds[t][rec], labels[t][rec]) for rec in labels[t]} for t in labels}
    files = write_report(evaluation, tmp_path / "report", waveforms=waveforms, fs=FS)
    assert set(files) == {
        "evaluation_json", "summary_csv", "per_recording_csv",
        "bland_altman_bvp", "bland_altman_rsp", "waveforms_bvp", "waveforms_rsp",
    }
    for name, path in files.items():
        assert path.parent == tmp_path / "report" and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_MAGIC
    saved = json.loads(files["evaluation_json"].read_text())
    assert saved["profile"] == profile and saved["window_seconds"] == 20
    assert saved["summary"]["bvp"]["MAE"] == pytest.approx(evaluation.summary["bvp"]["MAE"])
    if profile == "rppg-toolbox":
        assert saved["summary"]["rsp"]["MACC"] is None
    with files["per_recording_csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(evaluation.per_recording) == 12
    assert float(rows[0]["rate_label"]) == evaluation.per_recording[0]["rate_label"]
    with files["summary_csv"].open() as handle:
        summary = list(csv.DictReader(handle))
    assert [r["task"] for r in summary] == ["bvp", "rsp"] and summary[0]["profile"] == profile


def test_write_report_without_waveforms_and_bad_arguments(tmp_path, signals):
    preds, labels = signals
    evaluation = evaluate_recordings(preds, labels, FS, tasks=("bvp",))
    files = write_report(evaluation, tmp_path)
    assert "waveforms_bvp" not in files and files["bland_altman_bvp"].stat().st_size > 0
    with pytest.raises(ValueError, match="waveforms need fs"):
        write_report(evaluation, tmp_path, waveforms={"bvp": {"s0": (preds["bvp"]["s0"], labels["bvp"]["s0"])}})


def test_report_of_a_constant_model(tmp_path, signals):
    preds, labels = signals
    flat = {t: {rec: np.zeros_like(x) for rec, x in recs.items()} for t, recs in preds.items()}
    evaluation = evaluate_recordings(flat, labels, FS, tasks=("bvp",))
    waveforms = {"bvp": {rec: (flat["bvp"][rec], labels["bvp"][rec]) for rec in labels["bvp"]}}
    files = write_report(evaluation, tmp_path, waveforms=waveforms, fs=FS)
    assert all(p.stat().st_size > 0 for p in files.values())
    assert json.loads(files["evaluation_json"].read_text())["summary"]["bvp"]["MAE"] is None


def _one_window():
    t = np.arange(int(60 * FS)) / FS
    label = np.sin(2 * np.pi * 1.2 * t)
    return {"bvp": {"rec": label.copy()}}, {"bvp": {"rec": label}}


def test_bland_altman_points_are_not_jittered_and_listed_lines_are_drawn():
    preds, labels = _one_window()
    evaluation = evaluate_recordings(preds, labels, FS, tasks=("bvp",))
    row = evaluation.per_recording[0]
    assert row["rate_pred"] == row["rate_label"]  # an exact window: error 0
    figure = bland_altman_figure(evaluation, "bvp")
    scatter, difference = figure.axes[:2]
    np.testing.assert_array_equal(scatter.collections[0].get_offsets(), [[row["rate_label"], row["rate_pred"]]])
    np.testing.assert_array_equal(difference.collections[0].get_offsets()[:, 1], [0.0])
    # one window: y = x is still a visible line, and the zero line is there as the legend says
    (identity,) = [line for line in scatter.get_lines() if line.get_label() == "y = x"]
    xs, ys = identity.get_data()
    assert xs[1] - xs[0] >= 2 and list(xs) == list(ys)
    labels_shown = [text.get_text() for text in difference.get_legend().get_texts()]
    assert "zero" in labels_shown and "bias 0.00" in labels_shown
    assert all(any(line.get_label() == text for line in difference.get_lines()) for text in labels_shown)
    assert "1 window," in figure._suptitle.get_text()


def test_a_cropped_waveform_says_how_much_of_the_recording_it_shows():
    preds, labels = _one_window()
    evaluation = evaluate_recordings(preds, labels, FS, tasks=("bvp",))
    figure = waveforms_figure(evaluation, "bvp", {"rec": (preds["bvp"]["rec"], labels["bvp"]["rec"])}, FS)
    assert figure.axes[0].get_title(loc="left") == "rec (first 30 s of 60 s)"
    whole = waveforms_figure(evaluation, "bvp", {"rec": (preds["bvp"]["rec"], labels["bvp"]["rec"])}, FS,
                             max_seconds=90)
    assert whole.axes[0].get_title(loc="left") == "rec (all 60 s)"
