"""The typed config machinery: validation, `a.b=value` overrides, YAML round trip,
unknown fields and bad values, each error naming the field."""

from __future__ import annotations

import pytest

from mmrphys.config import ConfigError, ExperimentConfig, ModelConfig


def test_defaults_are_the_reference_multitask_model():
    c = ModelConfig()
    assert (c.resolution, c.modality, c.fusion, c.tasks, c.attention) == (72, "rgbt", "early", ("bvp", "rsp"), "tsfm")
    assert (c.nmf_steps, c.nmf_rank, c.rsp_nmf_rank, c.dropout, c.frames) == (4, 1, 4, 0.1, 180)
    assert c.in_channels == 4 and ModelConfig(modality="thermal").in_channels == 1


def test_overrides_parse_yaml_scalars_and_lists():
    c = ModelConfig().with_overrides(["resolution=9", "tasks=[bvp]", "dropout=0.25", "attention_at_inference=true"])
    assert (c.resolution, c.tasks, c.dropout, c.attention_at_inference) == (9, ("bvp",), 0.25, True)


def test_exponent_numbers_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 3e-3 as a string; on the command line and in files it means 0.003
    assert ExperimentConfig().with_overrides(["train.lr=3e-3"]).train.lr == 0.003
    path = tmp_path / "experiment.yaml"
    path.write_text("train:\n  lr: 1E-4\n")
    assert ExperimentConfig.load_yaml(path).train.lr == 1e-4
    with pytest.raises(ConfigError, match="train.*lr: expected a number, got '3e-3x'"):
        ExperimentConfig().with_overrides(["train.lr=3e-3x"])


def test_nested_overrides_reach_sections():
    c = ExperimentConfig().with_overrides(["model.resolution=36", "model.modality=rgb"])
    assert (c.model.resolution, c.model.modality) == (36, "rgb")


def test_yaml_round_trip(tmp_path):
    c = ModelConfig(resolution=9, modality="rgb", tasks=("rsp",), constraint="rbf", bases_init="seeded")
    path = c.save_yaml(tmp_path / "sub" / "model.yaml")
    assert ModelConfig.load_yaml(path) == c
    assert ModelConfig.load_yaml(path, overrides=["frames=160"]).frames == 160
    e = ExperimentConfig().with_overrides(["model.resolution=9"])
    assert ExperimentConfig.load_yaml(e.save_yaml(tmp_path / "exp.yaml")) == e


def test_missing_yaml_fields_take_defaults(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("resolution: 36\n")
    assert ModelConfig.load_yaml(path) == ModelConfig(resolution=36)


def test_flat_names_fields_for_trackers():
    flat = ExperimentConfig().flat()
    assert flat["model.resolution"] == 72 and flat["model.tasks"] == ["bvp", "rsp"]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["resolution=64"], r"ModelConfig.resolution: 64 is not one of \[72, 36, 9\]"),
        (["modality=ir"], r"ModelConfig.modality: 'ir' is not one of"),
        (["attention=sometimes"], r"ModelConfig.attention: 'sometimes' is not one of \['none', 'fsam', 'tsfm'\]"),
        (["frames=181"], r"ModelConfig.frames: must be a positive multiple of 4, got 181"),
        (["frames=abc"], r"ModelConfig.frames: expected an integer, got 'abc'"),
        (["dropout=1.5"], r"ModelConfig.dropout: must be in \[0, 1\)"),
        (["nmf_steps=0"], r"ModelConfig.nmf_steps: must be >= 1, got 0"),
        (["tasks=[]"], r"ModelConfig.tasks: at least one"),
        (["tasks=[bvp, bvp]"], r"ModelConfig.tasks: duplicate"),
        (["tasks=[bp]"], r"ModelConfig.tasks\[0\]: 'bp' is not one of"),
        (["attention_at_inference=maybe"], r"expected true or false"),
        (["fusion=late", "modality=rgb"], r"ModelConfig.fusion: 'late' needs modality 'rgbt'"),
        (["attention=fsam", "constraint=rbf"], r"ModelConfig.constraint: FSAM is the unconstrained"),
    ],
)
def test_bad_values_name_the_field_and_allowed_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig().with_overrides(overrides)


@pytest.mark.parametrize("override,message", [
    ("data.shuffle_buffer=-1", r"DataConfig.shuffle_buffer: must be >= 0, got -1"),
    ("data.cache_mb=-1", r"DataConfig.cache_mb: must be >= 0, got -1"),
])
def test_bad_data_values_name_the_field(override, message):
    from mmrphys.config import ExperimentConfig

    with pytest.raises(ConfigError, match=message):
        ExperimentConfig().with_overrides([override])


def test_a_nan_cache_size_from_a_file_is_refused(tmp_path):
    from mmrphys.config import ExperimentConfig

    path = tmp_path / "experiment.yaml"
    path.write_text("data:\n  cache_mb: .nan\n")
    with pytest.raises(ConfigError, match=r"DataConfig.cache_mb: must be >= 0, got nan"):
        ExperimentConfig.load_yaml(path)


def test_unknown_fields_are_rejected():
    with pytest.raises(ConfigError, match=r"unknown field 'resolutoin'"):
        ModelConfig().with_overrides(["resolutoin=9"])
    with pytest.raises(ConfigError, match=r"resolutoin: unknown field of ModelConfig"):
        ModelConfig.from_dict({"resolutoin": 9})
    with pytest.raises(ConfigError, match=r"model.colour: unknown field of ModelConfig"):
        ExperimentConfig.from_dict({"model": {"colour": 1}})
    with pytest.raises(ConfigError, match=r"'nosuch' is not a config section"):
        ExperimentConfig().with_overrides(["nosuch.x=1"])


def test_override_syntax_and_unreadable_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        ModelConfig().with_overrides(["resolution"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("resolution: [9\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: cannot read config"):
        ModelConfig.load_yaml(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("resolution: 10\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: ModelConfig.resolution: 10"):
        ModelConfig.load_yaml(wrong)
    with pytest.raises(ConfigError, match=r"cannot read config"):
        ModelConfig.load_yaml(tmp_path / "missing.yaml")


def test_configs_are_frozen_and_replace_validates():
    c = ModelConfig()
    with pytest.raises(Exception):
        c.resolution = 9  # type: ignore[misc]
    assert c.replace(resolution=9).resolution == 9
    with pytest.raises(ConfigError, match="ModelConfig.resolution"):
        c.replace(resolution=10)
