"""Write synthetic recordings in the folder layout (see `mmrphys.data.datasets.folder`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmrphys.config import SyntheticConfig
from mmrphys.data.synthetic.camera import write_video
from mmrphys.data.synthetic.render import SyntheticRecording, render
from mmrphys.data.synthetic_waveforms import CsvWaveforms

THERMAL_UNIT = "celsius"
#: file names of the folder layout the generator writes
RGB_FILE, THERMAL_FILE, LABELS_FILE, BOXES_FILE, META_FILE = (
    "rgb.avi", "thermal.npy", "labels.csv", "face_boxes.csv", "meta.json"
)


def write_recording(recording: SyntheticRecording, out_dir: Path, meta: dict,
                    config: SyntheticConfig = SyntheticConfig()) -> Path:
    """Write one recording in the folder layout, stored as `config` says (codec, thermal
    dtype); returns its folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_video(out_dir / RGB_FILE, recording.rgb, recording.fps, config)
    np.save(out_dir / THERMAL_FILE, recording.thermal.astype(config.thermal_storage))
    times = np.arange(len(recording.bvp)) / recording.fps
    np.savetxt(
        out_dir / LABELS_FILE,
        np.column_stack([times, recording.bvp, recording.rsp]),
        delimiter=",", header="time,bvp,rsp", comments="", fmt="%.6f",
    )
    np.savetxt(
        out_dir / BOXES_FILE,
        np.column_stack([np.arange(len(recording.face_boxes)), recording.face_boxes]),
        delimiter=",", header="frame,x,y,w,h", comments="", fmt="%d",
    )
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def generate_dataset(
    out_dir: str | Path,
    subjects: int = 10,
    seconds: float = 36.0,
    fps: float = 30.0,
    seed: int = 0,
    sessions: int = 1,
    config: SyntheticConfig = SyntheticConfig(),
    waveform_source: CsvWaveforms | None = None,
    progress: bool = False,
) -> list[Path]:
    """Render `subjects` x `sessions` recordings into `out_dir` in the folder layout.

    Recording folders are `S<NN>_<session>`; a subject's sessions share a face and differ
    in physiology, motion and noise. With `waveform_source`, BVP and RSP come from real
    recordings instead of the parametric models. Returns the recording folders.
    """
    if subjects < 1 or sessions < 1:
        raise ValueError(f"need at least one subject and one session, got {subjects} and {sessions}")
    n_frames = int(round(seconds * fps))
    if n_frames < 2:
        raise ValueError(f"seconds x fps must give at least 2 frames, got {seconds} x {fps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.json").write_text(
        json.dumps(
            {"generator": "mmrphys.data.synthetic", "seed": seed, "fps": fps, "seconds": seconds,
             "config": config.to_dict(),
             "waveforms": [str(p) for p in waveform_source.paths] if waveform_source else "parametric"},
            indent=2,
        ) + "\n"
    )
    jobs = [(s, k) for s in range(subjects) for k in range(sessions)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="synth", unit="recording", disable=None)  # None: a bar on a terminal only, not in logs
    folders = []
    for index, (subject, session) in enumerate(jobs):
        rng_seed = np.random.SeedSequence([seed, subject, session])
        waveforms = None
        if waveform_source is not None:
            waveforms = waveform_source.segment(index, np.random.default_rng([seed, subject, session, 1]), n_frames, fps)
        recording = render(rng_seed, n_frames, fps, config, waveforms, appearance_seed=np.random.SeedSequence([seed, subject]))
        meta = {
            "dataset": "synthetic",
            "subject": f"S{subject + 1:02d}",
            "session": str(session + 1),
            "fps": fps,
            "thermal_unit": THERMAL_UNIT,
            "hr_bpm": recording.hr_bpm,
            "rr_bpm": recording.rr_bpm,
            "preset": config.preset,
        }
        folders.append(write_recording(recording, out / f"S{subject + 1:02d}_{session + 1}", meta, config))
    return folders
