"""The deployment side of a trained model: the MLflow pyfunc loaded back by alias, the
evaluate / predict / export / register commands, all on the session's real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from mmrphys.losses import zscore
from pipelines.cli import main
from pipelines.serve.references import ModelRefError, resolve_model
from pipelines.tracking import client
from train_fixtures import MODEL_NAME

pytestmark = pytest.mark.ray


def _recording_clip(shards: Path, split: str = "test") -> np.ndarray:
    """All chunks of the first recording of `split`, joined in time: (1, C, T, 9, 9)."""
    from mmrphys.config import ModelConfig
    from pipelines.data.stream import load_split

    rows = load_split(shards, split, config=ModelConfig(resolution=9, modality="rgbt"), tasks=("bvp", "rsp"), with_ids=True)
    batch = rows.take_batch(1000, batch_format="numpy")
    first = batch["recording_id"][0]
    order = sorted((int(c), i) for i, (r, c) in enumerate(zip(batch["recording_id"], batch["chunk_index"]))
                   if r == first)
    return np.concatenate([batch["video"][i] for _, i in order], axis=1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def champion(trained_run):
    mlflow.set_tracking_uri(trained_run.tracking_uri)
    mlflow.set_registry_uri(trained_run.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")


def test_pyfunc_predicts_waveforms_and_rates_like_the_model(trained_run, champion):
    clip = _recording_clip(Path(trained_run.config.data.shards))
    out = champion.predict(clip, params={"fps": 30.0})
    frames = clip.shape[2]
    assert out["bvp"].shape == (1, frames) and out["rsp"].shape == (1, frames)
    model, _ = resolve_model(str(trained_run.result.model_dir))
    with torch.no_grad():
        direct = model(torch.from_numpy(clip))
    np.testing.assert_allclose(out["bvp"], zscore(direct["bvp"]).numpy(), atol=1e-4)
    assert 36 <= out["heart_rate_bpm"][0] <= 198
    assert 5 <= out["respiration_rate_bpm"][0] <= 40


def test_pyfunc_has_a_tensor_signature_and_no_pickled_object(trained_run, champion):
    inputs = champion.metadata.get_input_schema().inputs[0]
    assert inputs.shape == (-1, 4, -1, 9, 9) and inputs.type == np.dtype(np.float32)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}@champion"))
    assert not list(local.rglob("*.pkl"))
    assert {"model.pt", "model_config.json", "preprocessing.json", "evaluation.json"} <= {
        p.name for p in (local / "artifacts").iterdir()}
    assert (local / "input_example.json").is_file()


def test_pyfunc_refuses_clips_of_the_wrong_shape(champion):
    with pytest.raises(Exception, match="[Ss]hape"):
        champion.predict(np.zeros((1, 3, 65, 9, 9), np.float32))


def test_evaluate_command_reports_held_out_metrics(trained_run, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", f"models:/{MODEL_NAME}@champion", "--data", trained_run.config.data.shards,
                 "--split", "test", "--out", str(out), "--tracking-uri", trained_run.tracking_uri])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "HR (beats/min)" in printed and "RR (breaths/min)" in printed
    assert any(out.glob("*.png")) and any(out.glob("*.csv")) and any(out.glob("*.json"))


def test_evaluate_command_names_a_bad_model_reference(trained_run, tmp_path, capsys):
    code = main(["evaluate", "--model", str(tmp_path / "nothing"), "--data", trained_run.config.data.shards])
    assert code == 2 and "no such file or folder" in capsys.readouterr().err
    with pytest.raises(ModelRefError, match="cannot fetch"):
        resolve_model(f"models:/{MODEL_NAME}@no-such-alias", tracking_uri=trained_run.tracking_uri)


def test_predict_command_on_a_synthetic_video(trained_run, tmp_path, capsys):
    recording = sorted((Path(trained_run.config.data.shards).parent / "raw").glob("S*"))[0]
    code = main(["predict", str(recording / "rgb.avi"), "--thermal", str(recording / "thermal.npy"),
                 "--face-boxes", str(recording / "face_boxes.csv"), "--model", str(trained_run.result.run_dir),
                 "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    with open(tmp_path / "rgb_waveforms.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "bvp", "rsp"] and len(rows) == 1 + 600  # every frame of the 20 s video
    assert (tmp_path / "rgb_prediction.png").stat().st_size > 0
    assert "heart rate bpm" in printed
    rates = json.loads((tmp_path / "rgb_rates.json").read_text())
    assert len(rates["over_time"]) == 11  # a 10 s window every second over 20 s
    # a second recording also called rgb.avi never overwrites the first
    again = main(["predict", str(recording / "rgb.avi"), "--thermal", str(recording / "thermal.npy"),
                  "--model", str(trained_run.result.run_dir), "--out", str(tmp_path)])
    assert again == 2 and "rgb_waveforms.csv exists: pass --name" in capsys.readouterr().err


def test_predict_needs_the_thermal_video_for_an_rgbt_model(trained_run, tmp_path, capsys):
    recording = sorted((Path(trained_run.config.data.shards).parent / "raw").glob("S*"))[0]
    code = main(["predict", str(recording / "rgb.avi"), "--model", str(trained_run.result.model_dir)])
    assert code == 2 and "--thermal" in capsys.readouterr().err


def test_export_command_writes_an_onnx_file_matching_torch(trained_run, tmp_path, capsys):
    import onnxruntime

    path = tmp_path / "tiny.onnx"
    assert main(["export", "--model", f"models:/{MODEL_NAME}/{trained_run.result.registered_version}",
                 "--out", str(path), "--tracking-uri", trained_run.tracking_uri]) == 0
    clip = np.random.default_rng(0).uniform(0, 255, (2, 4, 65, 9, 9)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path))
    onnx_out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"video": clip})))
    model, _ = resolve_model(str(trained_run.result.model_dir))
    with torch.no_grad():
        direct = model(torch.from_numpy(clip))
    np.testing.assert_allclose(onnx_out["bvp"], direct["bvp"].numpy(), atol=1e-4)


def test_register_command_adds_versions_and_moves_aliases(trained_run, capsys):
    uri = trained_run.tracking_uri
    run_id = trained_run.result.mlflow_run_id
    assert main(["register", "--run", run_id, "--name", "tiny-copy", "--alias", "staging",
                 "--tracking-uri", uri]) == 0
    printed = capsys.readouterr()
    assert "models:/tiny-copy/1" in printed.out
    # our line, not MLflow's own two (they return with --verbose)
    assert "Successfully registered" not in printed.out + printed.err
    assert "Created version" not in printed.out + printed.err
    assert main(["register", "--version", "1", "--name", "tiny-copy", "--alias", "prod", "--tracking-uri", uri]) == 0
    assert str(client(uri).get_model_version_by_alias("tiny-copy", "prod").version) == "1"
    assert main(["register", "--run", "0" * 32, "--name", "tiny-copy", "--tracking-uri", uri]) == 2
    assert "cannot fetch" in capsys.readouterr().err


def test_predict_writes_rates_over_time_named_by_recording(tmp_path, capsys):
    from mmrphys.config import SyntheticConfig
    from mmrphys.data.synthetic import generate_dataset

    generate_dataset(tmp_path / "raw", subjects=1, seconds=14.0, seed=4, config=SyntheticConfig(width=64, height=48))
    (recording,) = [p for p in (tmp_path / "raw").iterdir() if p.is_dir()]
    command = ["predict", str(recording / "rgb.avi"), "--model", "pos", "--face-boxes",
               str(recording / "face_boxes.csv"), "--out", str(tmp_path / "out"), "--name", "S01"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    for kind, suffix in (("waveforms", "_waveforms.csv"), ("rates", "_rates.csv"), ("rates_json", "_rates.json"),
                         ("plot", "_prediction.png")):
        assert f"  {kind}: {tmp_path / 'out' / ('S01' + suffix)}" in printed
    with open(tmp_path / "out" / "S01_rates.csv") as handle:
        rows = list(csv.DictReader(handle))
    # the whole video, then a 10 s window every second: 14 s gives windows starting at 0..4 s
    assert [r["window"] for r in rows] == ["whole"] + ["10s"] * 5
    assert [float(r["start_s"]) for r in rows[1:]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    saved = json.loads((tmp_path / "out" / "S01_rates.json").read_text())
    assert saved["whole"]["heart_rate_bpm"] == pytest.approx(float(rows[0]["heart_rate_bpm"]), abs=0.01)
    assert [w["start_s"] for w in saved["over_time"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert main(command) == 2 and "S01_waveforms.csv exists: pass --name" in capsys.readouterr().err
    assert main([*command, "--overwrite"]) == 0
