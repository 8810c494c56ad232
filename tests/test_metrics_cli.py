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
    assert main([*args, "--predictions", str(tmp_path / "label.npz")]) == 2
    assert "no sampling rate" in capsys.readouterr().err
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(SignalFileError, match="junk.parquet: cannot read it as parquet"):
        read_signals(tmp_path / "junk.parquet")
    (tmp_path / "x.txt").write_text("1\n")
    with pytest.raises(SignalFileError, match="unsupported file type"):
        read_signals(tmp_path / "x.txt")
    pq.write_table(pa.table({"recording_id": ["a"], "hr": [1.0]}), tmp_path / "nocol.parquet")
    with pytest.raises(SignalFileError, match="no task column"):
        read_signals(tmp_path / "nocol.parquet")
    pq.write_table(pa.table({"recording_id": ["a", "a"], "bvp": [1.0, 2.0], "fps": [30.0, 25.0]}), tmp_path / "fps.parquet")
    with pytest.raises(SignalFileError, match="more than one fps"):
        read_signals(tmp_path / "fps.parquet")
    np.save(tmp_path / "one.npy", label["s1"])
    with pytest.raises(SignalFileError, match="name exactly one"):
        read_signals(tmp_path / "one.npy")
    assert read_signals(tmp_path / "one.npy", ("bvp",)).signals["bvp"]["0"].size == label["s1"].size
