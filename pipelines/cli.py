"""The `mmrphys` command line: one subcommand per module in `pipelines/commands/`.

Subcommand modules are imported only when their command runs (importlib below), so
`mmrphys model` does not pay for importing Ray or MLflow. A user error (bad input, bad
config, a missing file: `mmrphys.errors.UserError`) prints as `error: ...` on stderr
with exit status 2; anything else is a bug and keeps its traceback.

Every command takes `--verbose`: without it the console shows our own lines only
(progress, epochs, results, where outputs went) and Ray's and MLflow's logs stay in
Ray's session folder (`pipelines.ray_session.set_verbose`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mmrphys.errors import UserError
from pipelines.ray_session import set_verbose

# command name -> (module defining `register(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "model": ("pipelines.commands.model", "inspect a model variant: layers, parameters, forward time"),
    "synth": ("pipelines.commands.synth", "write a synthetic RGB + thermal face-video dataset"),
    "ingest": ("pipelines.commands.ingest", "turn a dataset into validated, subject-split Parquet shards"),
    "train": ("pipelines.commands.train", "train MMRPhys on shards with Ray Train, tracked in MLflow"),
    "evaluate": ("pipelines.commands.evaluate", "evaluate a model on a split of the shards: metrics, report, plots"),
    "register": ("pipelines.commands.register", "register a run's model in the MLflow registry or move an alias"),
    "export": ("pipelines.commands.export", "export a model to ONNX"),
    "predict": ("pipelines.commands.predict", "heart and respiration rate from your own face video"),
    "demo": ("pipelines.commands.demo", "the main job: synthetic data -> ingest -> train -> evaluate -> register"),
    "datasets": ("pipelines.commands.datasets", "list a raw dataset's recordings and check their labels before ingest"),
    "evaluate-signals": ("pipelines.commands.evaluate_signals", "HR/RR metrics of predicted vs label waveforms from files"),
    "tune": ("pipelines.commands.tune", "search resolution, modality pairing, attention and more with Ray Tune"),
    "compare": ("pipelines.commands.compare", "train and evaluate several models on the same data, seeds and metrics"),
    "submit": ("pipelines.commands.submit", "run an mmrphys command on a Ray cluster as a Ray job"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object]:
    """Build the parser, importing only the module of the command being run."""
    parser = argparse.ArgumentParser(prog="mmrphys", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show Ray's and MLflow's own logs (default: our progress and results only)")
    module = None
    for name, (path, help_line) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line, parents=[common])
        if name == chosen:
            module = importlib.import_module(path)
            module.register(p)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mmrphys` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    set_verbose(args.verbose)
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
