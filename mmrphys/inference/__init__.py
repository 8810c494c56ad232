"""The one inference path: the model artifact, video preprocessing, chunked prediction
and rates. Ingest, training validation, evaluation, `predict`, batch prediction and the
MLflow pyfunc model all call these; none re-implements a step (docs/inference.md)."""

from mmrphys.inference.artifact import (
    ModelArtifact,
    is_model_folder,
    load_model,
    read_artifact,
    save_model,
)
from mmrphys.inference.predictor import (
    Predictor,
    chunk_spans,
    clip_rates,
    rates_over_time,
)
from mmrphys.inference.preprocessing import (
    FaceCrops,
    crop_boxes,
    crop_faces,
    model_input,
    prepare_video,
    store,
)

__all__ = [
    "FaceCrops", "ModelArtifact", "Predictor", "chunk_spans", "clip_rates", "crop_boxes", "crop_faces",
    "is_model_folder", "load_model", "model_input", "prepare_video", "rates_over_time", "read_artifact",
    "save_model", "store",
]
