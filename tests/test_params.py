"""Params objects: typed, frozen, and every bad value is named by file and key."""

import dataclasses

import pytest

from ganpipe import params
from ganpipe.errors import ParamsError
from ganpipe.profiles import available
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


@pytest.mark.parametrize("name", available(REPO))  # every file in profiles/
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


def test_params_are_read_as_yaml_1_2_like_dvc(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("a: 4e-4\nb: off\nc: 1e3\nd: yes\ne: 0.0002\n")
    assert params.read_params_file(f) == {"a": 0.0004, "b": "off", "c": 1000.0, "d": "yes", "e": 0.0002}


@pytest.mark.parametrize("text, message", [
    ("a: &x [1, 2]\nb: *x\n", r"p.yaml: line 1: YAML anchors and aliases are not accepted"),
    ("a: 1\na: 2\n", r"p.yaml: not valid YAML \(.*duplicate key"),
    ("a: [1, 2\n", r"p.yaml: not valid YAML"),
])
def test_aliases_duplicates_and_bad_yaml_are_one_line_errors(tmp_path, text, message):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError, match=message) as err:
        params.read_params_file(f)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_an_alias_bomb_is_refused_at_once_and_non_utf8_is_one_line(tmp_path):
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10^9 leaves
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(ParamsError, match="anchors and aliases"):
        params.read_params_file(tmp_path / "params.yaml")
    assert time.perf_counter() - t0 < 5
    (tmp_path / "params.yaml").write_bytes(b"train:\n  g_lr: \xff\xfe\n")
    with pytest.raises(ParamsError, match=r"params.yaml: not UTF-8 text \(byte 15\)"):
        params.read_params_file(tmp_path / "params.yaml")


def test_a_long_bad_value_is_cut_in_the_message():
    data = default_params()["prepare"] | {"channels": "x" * 10000}
    with pytest.raises(ParamsError) as err:
        params.from_dict(params.Prepare, data)
    assert len(str(err.value)) < 300 and "prepare.channels" in str(err.value)


@pytest.mark.parametrize("value", ["images:data/raw/a,b", "x[1]", "k=v", "it's", 'say "hi"', "back\\slash", "a b"])
def test_profile_strings_reach_dvc_as_one_experiment_with_the_exact_value(value):
    """Every value goes through DVC's own -S parser (Hydra's grammar): one experiment, the same string."""
    from dvc.utils.hydra import get_hydra_sweeps

    from ganpipe.profiles import set_param_args

    args = set_param_args({"prepare": {"source": value}, "train": {"augment": ["translation", "cutout"]}})
    sweeps = get_hydra_sweeps({"params.yaml": args[1::2]})
    assert len(sweeps) == 1, sweeps
    (overrides,) = sweeps
    from dvc.utils.hydra import to_hydra_overrides

    parsed = {o.key_or_group: o.value() for o in to_hydra_overrides(overrides["params.yaml"])}
    assert parsed["prepare.source"] == value and list(parsed["train.augment"]) == ["translation", "cutout"]


@pytest.mark.parametrize("name", ["../params", "/etc/passwd", "a/b", ""])
def test_a_profile_name_outside_profiles_is_refused(name):
    from ganpipe.errors import GanpipeError
    from ganpipe.profiles import load_profile

    with pytest.raises(GanpipeError, match=r"a profile is named by a file in profiles/"):
        load_profile(name, REPO)


def test_seeds_queue_one_variant_per_seed_and_other_dvc_arguments_pass_through():
    from ganpipe.profiles import exp_command, seed_commands

    cmds = seed_commands("tiny", None, 3, ["train.g_lr=0.001"], REPO, ["-m", "seed spread"])
    seed = params.read_params_file(REPO / "params.yaml")["base"]["seed"]
    for i, cmd in enumerate(cmds):
        assert cmd[cmd.index("-n") + 1] == f"tiny-seed{seed + i}" and "--queue" in cmd
        assert cmd[-4:] == ["-S", f"base.seed={seed + i}", "-m", "seed spread"]  # the seed after every override
    assert exp_command("tiny", "x", False, [], REPO, ["-f", "--temp", "train"])[-3:] == ["-f", "--temp", "train"]
    with pytest.raises(Exception, match="--seeds 0"):
        seed_commands("tiny", None, 0, [], REPO)
