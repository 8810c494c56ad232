"""Dataset readers, one small module each. Each module defines
`read(root: Path) -> Iterator[Recording]` that yields recordings lazily.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

from mmrphys.data.recording import DatasetError, Recording

#: dataset name (as given to `mmrphys ingest --dataset`) -> reader module
READERS: dict[str, str] = {
    "synthetic": "mmrphys.data.datasets.folder",
    "folder": "mmrphys.data.datasets.folder",
    "ibvp": "mmrphys.data.datasets.ibvp",
    "bp4d": "mmrphys.data.datasets.bp4d",
    "scamps": "mmrphys.data.datasets.scamps",
    "ubfc-rppg": "mmrphys.data.datasets.ubfc_rppg",
    "pure": "mmrphys.data.datasets.pure",
}


def read_dataset(name: str, root: str | Path) -> Iterator[Recording]:
    """Yield the recordings of dataset `name` under `root`."""
    if name not in READERS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {sorted(READERS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    module = importlib.import_module(READERS[name])
    return module.read(root)
