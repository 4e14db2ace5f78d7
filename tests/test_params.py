"""Params objects: typed, frozen, and every bad value is named by file and key."""

import dataclasses

import pytest

from ganpipe import params
from ganpipe.errors import ParamsError
from tests.conftest import REPO, default_params


def test_default_params_file_loads_every_section():
    data = default_params()
    assert set(data) == set(params.SECTIONS), "params.yaml sections and ganpipe.params sections differ"
    for name in params.SECTIONS:
        obj = params.load(name, REPO / "params.yaml")
        assert dataclasses.is_dataclass(obj)


def test_params_are_frozen():
    obj = params.load("prepare", REPO / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.image_size = 64


def test_lists_become_tuples():
    data = default_params()["prepare"] | {"classes": [3, 1]}
    assert params.from_dict(params.Prepare, data).classes == (3, 1)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("image_size", 30, "prepare.image_size: must be 'auto' or a multiple of 4"),
        ("image_size", 4, "prepare.image_size: must be 'auto' or a multiple of 4"),
        ("image_size", "28", "prepare.image_size: must be 'auto' or int"),
        ("image_size", 28.0, "prepare.image_size: must be 'auto' or int"),
        ("channels", 2, "prepare.channels: must be 'auto', 1 or 3"),
        ("channels", True, "prepare.channels: must be 'auto' or int"),
        ("test_fraction", 0, "prepare.test_fraction: must be in (0, 1)"),
        ("test_fraction", 1.5, "prepare.test_fraction: must be in (0, 1)"),
        ("test_fraction", float("nan"), "prepare.test_fraction: must be float"),
        ("max_train", 0, "prepare.max_train: must be >= 1 or null"),
        ("classes", [], "prepare.classes: must be a non-empty list"),
        ("classes", [1, 1], "prepare.classes: must be a non-empty list of distinct"),
        ("classes", "1,2", "prepare.classes: must be a list of int or null"),
        ("on_bad_image", "ignore", "prepare.on_bad_image: must be 'fail' or 'skip'"),
        ("source", "s3://bucket", "prepare.source: must be 'fashion-mnist', 'idx:<dir>'"),
        ("source", "images:", "prepare.source: must be"),
    ],
)
def test_bad_values_name_file_and_key(key, value, message):
    data = default_params()["prepare"] | {key: value}
    with pytest.raises(ParamsError) as err:
        params.from_dict(params.Prepare, data, where="my.yaml")
    assert str(err.value).startswith("my.yaml: "), str(err.value)
    assert message in str(err.value)


def test_unknown_and_missing_keys():
    data = default_params()["prepare"] | {"imgsize": 28}
    with pytest.raises(ParamsError, match=r"prepare\.imgsize: unknown key"):
        params.from_dict(params.Prepare, data)
    data = default_params()["prepare"]
    del data["channels"]
    with pytest.raises(ParamsError, match=r"prepare\.channels: missing key"):
        params.from_dict(params.Prepare, data)


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("base: {seed: [1\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        params.load("base", bad)
    bad.write_text("base: {seed: 1}\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: prepare: missing section"):
        params.load("prepare", bad)
    bad.write_text("base: {seed: -1}\n")
    with pytest.raises(ParamsError, match=r"base\.seed: must be in"):
        params.load("base", bad)
    with pytest.raises(ParamsError, match="cannot read params file"):
        params.load("base", tmp_path / "absent.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "params.yaml"
    evil.write_text("base: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        params.load("base", evil)


# ------------------------------------------------------------------------------------ profiles


@pytest.mark.parametrize("name", ["tiny", "default", "gpu-full", "gpu-64"])
def test_every_profile_is_valid_on_top_of_params_yaml(name):
    from ganpipe.profiles import load_profile, set_param_args

    prof = load_profile(name, REPO)
    args = set_param_args(prof)
    assert len(args) == 2 * sum(len(v) for v in prof.values())
    if name == "tiny":
        assert "train.kimg=null" in args and "train.g_lr=0.0005" in args


@pytest.mark.parametrize("text, message", [
    ("train:\n  g_lrr: 0.1\n", r"bad.yaml: train.g_lrr: unknown key"),
    ("train:\n  g_lr: -1\n", r"bad.yaml: train.g_lr: "),
    ("trian:\n  g_lr: 0.1\n", r"bad.yaml: trian: unknown section"),
    ("train:\n  epochs: 3\n", r"bad.yaml: .*kimg.*epochs|bad.yaml: .*epochs.*kimg"),  # both set on top of kimg: 300
])
def test_a_bad_profile_names_the_file_and_key(tmp_path, text, message):
    from ganpipe.profiles import load_profile

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/bad.yaml").write_text(text)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    with pytest.raises(ParamsError, match=message):
        load_profile("bad", tmp_path)
