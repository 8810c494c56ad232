"""`mmrphys evaluate-signals` on real NumPy, CSV and Parquet files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.data.signal_files import SignalFileError, read_signals

FS = 30.0


def waves(seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(30 * FS)) / FS
    label = {"s1": np.sin(2 * np.pi * 1.2 * t), "s2": np.sin(2 * np.pi * 1.5 * t)}
    pred = {rec: x + rng.normal(scale=0.3, size=x.size) for rec, x in label.items()}
    return pred, label


def write_long(path, signals: dict[str, np.ndarray], fps: bool = True):
    ids = [rec for rec, x in signals.items() for _ in x]
    columns = {"recording_id": ids, "bvp": np.concatenate(list(signals.values()))}
    if fps:
        columns["fps"] = [FS] * len(ids)
    table = pa.table(columns)
    if path.suffix == ".csv":
        import pyarrow.csv

        pyarrow.csv.write_csv(table, path)
    else:
        pq.write_table(table, path)


def test_npz_files_print_the_metrics_table(tmp_path, capsys):
    pred, label = waves()
    np.savez(tmp_path / "pred.npz", **{f"bvp/{k}": v for k, v in pred.items()})
    np.savez(tmp_path / "label.npz", fps=FS, **{f"bvp/{k}": v for k, v in label.items()})
    code = main(["evaluate-signals", "--predictions", str(tmp_path / "pred.npz"), "--labels", str(tmp_path / "label.npz"),
                 "--out", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0
    assert "HR (beats/min)" in out and "profile default, method fft, whole recordings" in out
    assert (tmp_path / "report" / "bland_altman_bvp.png").stat().st_size > 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_tables_and_json_output(tmp_path, capsys, suffix):
    pred, label = waves()
    write_long(tmp_path / f"pred{suffix}", pred, fps=False)
    write_long(tmp_path / f"label{suffix}", label)
    code = main(["evaluate-signals", "--predictions", str(tmp_path / f"pred{suffix}"), "--labels",
                 str(tmp_path / f"label{suffix}"), "--profile", "rppg-toolbox", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["bvp"]["n"] == 2 and summary["bvp"]["MAE"] == 0.0


def test_chunked_parquet_is_reassembled_in_chunk_order(tmp_path):
    pred, _ = waves()
    chunks = pred["s1"].reshape(5, -1)
    order = [3, 0, 4, 1, 2]
    pq.write_table(pa.table({"recording_id": ["s1"] * 5, "chunk_index": order,
                             "bvp": [chunks[i].tolist() for i in order]}), tmp_path / "chunks.parquet")
    loaded = read_signals(tmp_path / "chunks.parquet")
    np.testing.assert_array_equal(loaded.signals["bvp"]["s1"], pred["s1"])
    assert loaded.fps is None


def test_bad_files_are_clear_errors(tmp_path, capsys):
    pred, label = waves()
    np.savez(tmp_path / "label.npz", **{f"bvp/{k}": v for k, v in label.items()})
    np.savez(tmp_path / "nan.npz", **{f"bvp/{k}": np.where(np.arange(v.size) == 5, np.nan, v) for k, v in pred.items()})
    args = ["evaluate-signals", "--labels", str(tmp_path / "label.npz")]
    assert main([*args, "--predictions", str(tmp_path / "missing.npz"), "--fs", "30"]) == 2
    assert "missing.npz: no such file" in capsys.readouterr().err
    assert main([*args, "--predictions", str(tmp_path / "nan.npz"), "--fs", "30"]) == 2
    assert "bvp prediction of recording 's1': 1 NaN or infinite sample(s), first at index (5,)" in capsys.readouterr().err
    np.savez(tmp_path / "pred.npz", **{f"bvp/{k}": v for k, v in pred.items()})
    assert main([*args, "--predictions", str(tmp_path / "pred.npz")]) == 2
    assert "no sampling rate: neither file has an fps column (CSV/Parquet) or key (.npz); pass --fs HZ" \
        in capsys.readouterr().err
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SignalFileError, match="junk.parquet: cannot read it as parquet"):
        read_signals(tmp_path / "junk.parquet")
    (tmp_path / "x.txt").write_text("1\n")
    with pytest.raises(SignalFileError, match="unsupported file type"):
        read_signals(tmp_path / "x.txt")
    pq.write_table(pa.table({"recording_id": ["a"], "hr": [1.0]}), tmp_path / "nocol.parquet")
    with pytest.raises(SignalFileError, match=r"no predictions column \(pred_<task> or <task>"):
        read_signals(tmp_path / "nocol.parquet")
    pq.write_table(pa.table({"recording_id": ["a", "a"], "bvp": [1.0, 2.0], "fps": [30.0, 25.0]}), tmp_path / "fps.parquet")
    with pytest.raises(SignalFileError, match="more than one fps"):
        read_signals(tmp_path / "fps.parquet")
    np.save(tmp_path / "one.npy", label["s1"])
    with pytest.raises(SignalFileError, match="name exactly one"):
        read_signals(tmp_path / "one.npy")
    assert read_signals(tmp_path / "one.npy", ("bvp",)).signals["bvp"]["0"].size == label["s1"].size


def _batch_output(path, pred, label, fps=FS):
    """A file laid out as batch prediction writes it: pred_ and label_ columns, one row per recording."""
    pq.write_table(pa.table({"recording_id": list(pred), "fps": [fps] * len(pred),
                             "pred_bvp": [pred[k].tolist() for k in pred],
                             "label_bvp": [label[k].tolist() for k in pred]}), path)


def test_batch_prediction_output_is_scored_against_its_label_columns(tmp_path, capsys):
    pred, label = waves()
    _batch_output(tmp_path / "batch.parquet", pred, label)
    np.savez(tmp_path / "ref.npz", fps=FS, **{f"bvp/{k}": v for k, v in label.items()}, )
    np.savez(tmp_path / "pred.npz", fps=FS, **{f"bvp/{k}": v for k, v in pred.items()})
    expected = main(["evaluate-signals", "--predictions", str(tmp_path / "pred.npz"), "--labels",
                     str(tmp_path / "ref.npz"), "--json"])
    reference = json.loads(capsys.readouterr().out)
    assert expected == 0
    batch = str(tmp_path / "batch.parquet")
    # the labels default to the file's own label_ columns; naming the same file again is the same
    for args in ([], ["--labels", batch]):
        assert main(["evaluate-signals", "--predictions", batch, *args, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["bvp"]["MACC"] == pytest.approx(reference["bvp"]["MACC"]) and summary["bvp"]["MACC"] < 0.99
    loaded = read_signals(batch, role="labels")
    np.testing.assert_array_equal(loaded.signals["bvp"]["s1"], label["s1"])
    # batch prediction writes a folder of Parquet files; the folder reads as one table
    (tmp_path / "waveforms").mkdir()
    _batch_output(tmp_path / "waveforms" / "part-0.parquet", pred, label)
    assert read_signals(tmp_path / "waveforms").signals["bvp"].keys() == pred.keys()


def test_a_file_is_never_scored_against_itself(tmp_path, capsys):
    pred, _ = waves()
    write_long(tmp_path / "pred.csv", pred)
    for args in (["--labels", str(tmp_path / "pred.csv")], []):
        assert main(["evaluate-signals", "--predictions", str(tmp_path / "pred.csv"), *args]) == 2
        assert "pred.csv: --predictions and --labels both read column 'bvp'; that scores the predictions " \
               "against themselves" in capsys.readouterr().err


def test_the_sampling_rate_rule(tmp_path, capsys):
    pred, label = waves()
    write_long(tmp_path / "pred.csv", pred, fps=False)
    write_long(tmp_path / "label.csv", label, fps=False)
    args = ["evaluate-signals", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "label.csv")]
    assert main(args) == 2 and "pass --fs HZ" in capsys.readouterr().err  # a CSV pair without fps needs --fs
    assert main([*args, "--fs", "30"]) == 0
    assert main([*args, "--fs", "0"]) == 2 and "--fs 0: expected a positive sampling rate" in capsys.readouterr().err
    write_long(tmp_path / "label.csv", label)  # one file's fps column is enough
    assert main(args) == 0
    np.savez(tmp_path / "p25.npz", fps=25.0, **{f"bvp/{k}": v for k, v in pred.items()})
    bad = ["evaluate-signals", "--predictions", str(tmp_path / "p25.npz"), "--labels", str(tmp_path / "label.csv")]
    assert main(bad) == 2
    assert "recording 's1': fps 25 in the predictions, 30 in the labels; fix the files or pass --fs" \
        in capsys.readouterr().err
    assert main([*bad, "--fs", "30"]) == 0  # --fs overrides the files
