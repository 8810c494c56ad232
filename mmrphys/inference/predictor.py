"""Model forward for serving: clips to standardized waveforms, videos to whole waveforms,
waveforms to rates.

Every prediction is z-scored per chunk (the reference's test loop does the same), so a
chunk's waveform never depends on its batch-mates, and the rates read from it use the
evaluation profile's own rules (`mmrphys.metrics.waveform_rates`).
"""

from __future__ import annotations

import numpy as np
import torch

from mmrphys.config import ModelConfig
from mmrphys.data.recording import DatasetError
from mmrphys.metrics import waveform_rates
from mmrphys.model import input_transform
from mmrphys.signals import standardize_chunks
from mmrphys.tasks import TASKS


def chunk_spans(n: int, length: int, step: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of chunks of `length` frames starting every `step` (default `length`)
    frames; the last one is aligned to the end, overlapping the one before. A video
    shorter than `length` is one chunk of n - n % 4."""
    if n < length:
        length = n - n % 4
        if length < 4:
            raise DatasetError(f"the video has {n} frames; at least 4 are needed")
    step = min(step or length, length)
    spans = [(s, s + length) for s in range(0, n - length + 1, step)]
    if spans[-1][1] < n:
        spans.append((n - length, n))
    return spans


class Predictor:
    """A network in eval mode behind the one serving interface.

    predict_clips: clips as the network takes them (B, C, T or T+1, H, W): from the
        training stream, or raw clips through `input_transform` -> {task: (B, T)}
        z-scored per clip.
    predict_video: one whole raw clip (C, N, H, W) -> {task: (N,)}: chunked, each chunk
        through the architecture's input transform, predicted and stitched.
    """

    def __init__(self, model: torch.nn.Module, config: ModelConfig, batch_size: int = 8):
        self.model = model.eval()
        self.config = config
        self.batch_size = batch_size

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the model predicts."""
        return self.config.tasks

    @torch.no_grad()
    def predict_clips(self, clips: np.ndarray, fps: float | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Eval-mode waveforms of clips, z-scored per clip (float32). `fps` (one rate, or
        one per clip) reaches models that need it (the unsupervised methods)."""
        clips = np.asarray(clips, dtype=np.float32)
        if clips.ndim == 4:
            clips = clips[None]
        rates = None if fps is None else np.broadcast_to(np.asarray(fps, np.float64), (len(clips),))
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        outputs: dict[str, list[np.ndarray]] = {task: [] for task in self.tasks}
        for start in range(0, len(clips), self.batch_size):
            batch = torch.from_numpy(clips[start : start + self.batch_size]).to(device)
            if getattr(self.model, "needs_fps", False):
                predictions = self.model(batch, fps=None if rates is None else rates[start : start + self.batch_size])
            else:
                predictions = self.model(batch)
            for task in self.tasks:
                outputs[task].append(standardize_chunks(predictions[task].float().cpu().numpy()))
        return {task: np.concatenate(parts) for task, parts in outputs.items()}

    def predict_video(self, clip: np.ndarray, fps: float | None = None) -> dict[str, np.ndarray]:
        """Whole-video waveforms from a (C, N, H, W) clip: chunks of the model's length,
        each predicted and z-scored, stitched back in order.

        A network that returns fewer samples than frames (RhythmFormer: 8 * floor(T / 8))
        gets chunks that start every returned length, so every frame is predicted but the
        last few of the video that no chunk returns; those repeat the last predicted sample.
        """
        n = clip.shape[1]
        step = self.config.output_frames(min(self.config.frames, n - n % 4))
        spans = chunk_spans(n, self.config.frames, step)
        chunks = np.stack([clip[:, start:end] for start, end in spans])
        predicted = self.predict_clips(input_transform(chunks, self.config), fps)
        stitched = {task: np.zeros(n, np.float32) for task in self.tasks}
        written = 0
        for (start, _), *values in zip(spans, *(predicted[t] for t in self.tasks)):
            covered = start + len(values[0])
            for task, value in zip(self.tasks, values):
                # a chunk overlapping the one before (the end-aligned last): only its new samples
                stitched[task][written:covered] = value[written - start :]
            written = max(written, covered)
        for task in self.tasks:
            stitched[task][written:] = stitched[task][written - 1]
        return stitched


def clip_rates(waveforms: dict[str, np.ndarray], fps: float, profile: str = "default") -> dict[str, np.ndarray]:
    """Rate per minute of each waveform row (B, T), named as served (`heart_rate_bpm`, ...).

    NaN for a waveform too short for the task's band (e.g. RR from a 6 s clip) or constant.
    """
    return {TASKS[task].rate_output: waveform_rates(np.atleast_2d(np.asarray(values, np.float64)), fps, task,
                                                    profile=profile)
            for task, values in waveforms.items()}


def rates_over_time(waveforms: dict[str, np.ndarray], fps: float, *, window_seconds: float,
                    step_seconds: float, profile: str = "default") -> list[dict[str, float]]:
    """Rates in a window sliding over whole waveforms: one row per step with the window's
    start, end and each task's rate (NaN where the window is too short for the task)."""
    n = len(next(iter(waveforms.values())))
    size, step = int(round(window_seconds * fps)), max(1, int(round(step_seconds * fps)))
    if n < size:
        return []
    starts = list(range(0, n - size + 1, step))
    windows = {task: np.stack([w[s : s + size] for s in starts]) for task, w in waveforms.items()}
    rates = clip_rates(windows, fps, profile)
    return [{"start_s": s / fps, "end_s": (s + size) / fps, **{k: float(v[i]) for k, v in rates.items()}}
            for i, s in enumerate(starts)]
