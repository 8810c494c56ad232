"""Search spaces: every built-in point builds a valid config, invalid combinations are
named before a search starts, YAML spaces load, and Tune resolves the bundles."""

from __future__ import annotations

import json

import pytest
from ray.tune.search.sample import Categorical
from ray.tune.search.variant_generator import generate_variants

from mmrphys.config import ExperimentConfig
from tune_spaces import SpaceError, describe, get_space, space_names
from tune_spaces.attention import combinations
from tune_spaces.overrides import (
    apply_overrides,
    as_random,
    check_space,
    corner_points,
    trial_overrides,
)


@pytest.fixture
def base() -> ExperimentConfig:
    return ExperimentConfig()


@pytest.mark.parametrize("name", ["resolution_modality", "attention", "default", "architectures"])
def test_every_builtin_point_is_a_valid_config(name: str, base: ExperimentConfig) -> None:
    configs = check_space(get_space(name), base)
    assert configs
    assert describe(name)


def test_architectures_space_trains_each_architecture_as_its_compare_entry(base: ExperimentConfig) -> None:
    configs = check_space(get_space("architectures"), base.with_overrides(["model.resolution=9", "model.frames=160"]))
    models = sorted((c.model.architecture, c.model.resolution, c.model.tasks) for c in configs)
    assert models == [("factorizephys", 72, ("bvp",)), ("mmrphys", 9, ("bvp", "rsp")), ("rhythmformer", 64, ("bvp",))]


def test_resolution_modality_is_the_full_grid_of_allowed_pairs(base: ExperimentConfig) -> None:
    configs = check_space(get_space("resolution_modality"), base)
    pairs = {(c.model.resolution, c.model.modality, c.model.fusion) for c in configs}
    assert len(pairs) == 15
    assert {p[0] for p in pairs} == {72, 36, 9}
    assert {(m, f) for _, m, f in pairs} == {
        ("rgb", "early"),
        ("thermal", "early"),
        ("rgbt", "early"),
        ("rgbt", "per_task"),
        ("rgbt", "late"),
    }


def test_attention_space_has_no_two_points_training_the_same_model(base: ExperimentConfig) -> None:
    configs = [apply_overrides(base, point) for point in combinations()]
    models = {json.dumps(c.model.to_dict(), sort_keys=True) for c in configs}
    assert len(models) == len(configs)
    by_kind: dict[tuple[str, str], set[tuple[int, int, str]]] = {}
    for c in configs:
        m = c.model
        by_kind.setdefault((m.attention, m.constraint), set()).add((m.nmf_steps, m.nmf_rank, m.bases_init))
    # Base model: one point; target TSFM is a projection, so steps and rank are not searched
    assert len([c for c in configs if c.model.attention == "none"]) == 1
    assert by_kind[("tsfm", "target")] == {(base.model.nmf_steps, base.model.nmf_rank, base.model.bases_init)}
    for kind in (("fsam", "target"), ("tsfm", "target_harmonics"), ("tsfm", "rbf")):
        assert {s for s, _, _ in by_kind[kind]} == set(range(1, 9))
    # the rank is searched only where it matters: FSAM from distinct (seeded) bases
    assert {(r, init) for _, r, init in by_kind[("fsam", "target")]} == {
        (1, "reference"), (1, "seeded"), (2, "seeded"), (4, "seeded")}
    assert {(r, init) for _, r, init in by_kind[("tsfm", "target_harmonics")]} == {(1, "reference")}
    # RBF from the reference's bases is random on every call: only seeded bases
    assert {(r, init) for _, r, init in by_kind[("tsfm", "rbf")]} == {(1, "seeded")}
    assert len(configs) == 99


def test_invalid_combination_is_named_before_the_search(base: ExperimentConfig) -> None:
    space = {
        "model.modality": {"grid_search": ["rgb", "rgbt"]},
        "model.fusion": {"grid_search": ["early", "late"]},
    }
    with pytest.raises(SpaceError) as err:
        check_space(space, base)
    message = str(err.value)
    assert "1 kind(s) of invalid combination" in message
    assert "model.modality='rgb', model.fusion='late'" in message
    assert "needs modality 'rgbt'" in message


def test_extra_check_failure_is_reported(base: ExperimentConfig) -> None:
    def no_thermal(config: ExperimentConfig) -> None:
        if config.model.modality != "rgb":
            raise ValueError(f"shards hold no thermal video for modality {config.model.modality!r}")

    with pytest.raises(SpaceError, match="shards hold no thermal video for modality 'thermal'"):
        check_space(get_space("resolution_modality"), base, check=no_thermal)


def test_bad_value_names_the_field(base: ExperimentConfig) -> None:
    with pytest.raises(SpaceError, match=r"model.resolution=48.*ModelConfig.resolution: 48 is not one of"):
        apply_overrides(base, {"model.resolution": 48})


def test_trial_overrides_flatten_bundles_and_reject_conflicts() -> None:
    sample = {"model.resolution": 36, "pairing": {"model.modality": "rgbt", "model.fusion": "late"}}
    assert trial_overrides(sample) == {
        "model.resolution": 36,
        "model.modality": "rgbt",
        "model.fusion": "late",
    }
    with pytest.raises(SpaceError, match="sets model.modality = 'rgb', but another key already set it"):
        trial_overrides({"model.modality": "rgbt", "pairing": {"model.modality": "rgb"}})
    with pytest.raises(SpaceError, match="'resolution' is not a dotted config field"):
        trial_overrides({"resolution": 36})


def test_random_mode_turns_grids_into_choices_and_tune_resolves_bundles(base: ExperimentConfig) -> None:
    space = as_random(get_space("default"))
    assert isinstance(space["pairing"], Categorical)
    for _, sample in generate_variants(space):
        config = apply_overrides(base, trial_overrides(sample))
        assert config.model.modality == "rgbt"
        assert 1e-4 <= config.train.lr <= 3e-3


def test_corner_points_cover_numeric_bounds() -> None:
    points = corner_points(get_space("default"))
    assert {p["train.lr"] for p in points} == {1e-4, 3e-3}
    assert len(points) == 2 * 3 * 2 * 2


def test_unknown_space_lists_the_builtin_ones() -> None:
    with pytest.raises(SpaceError, match="not a built-in space"):
        get_space("nope")
    assert set(space_names()) == {"resolution_modality", "attention", "default", "architectures"}


def test_yaml_space_loads_and_builds_configs(tmp_path, base: ExperimentConfig) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "model.resolution: {grid: [36, 9]}\n"
        "train.lr: {loguniform: [1.0e-4, 1.0e-3]}\n"
        "pairing:\n"
        "  choice:\n"
        "    - {model.modality: rgbt, model.fusion: late}\n"
        "    - {model.modality: thermal, model.fusion: early}\n"
        "model.dropout: 0.2\n"
    )
    configs = check_space(get_space(str(path)), base)
    assert {c.model.resolution for c in configs} == {36, 9}
    assert {c.model.dropout for c in configs} == {0.2}
    assert {c.model.modality for c in configs} == {"rgbt", "thermal"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("model.resolution: {grid: []}\n", "model.resolution.grid: expected a non-empty list"),
        ("train.lr: {loguniform: [0, 1]}\n", "train.lr.loguniform: bounds must be positive"),
        ("train.lr: {uniform: [3, 1]}\n", "train.lr.uniform: low 3 must be below high 1"),
        ("model.nmf_steps: {randint: [1.5, 4]}\n", "expected integer bounds"),
        ("- 1\n- 2\n", "expected a non-empty mapping"),
        ("a: [unclosed\n", "cannot read search space"),
    ],
)
def test_bad_yaml_space_names_file_and_key(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=message) as err:
        get_space(str(path))
    assert str(path) in str(err.value)


def test_missing_yaml_space_file(tmp_path) -> None:
    with pytest.raises(SpaceError, match="cannot read search space"):
        get_space(str(tmp_path / "missing.yaml"))
