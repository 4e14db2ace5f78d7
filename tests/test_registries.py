"""Each registry's keys are exactly the values its params key accepts, and the seeding helper lists every
stream the code draws from."""

import re
import types
import typing
from pathlib import Path

import numpy as np
import pytest

from ganpipe import params as P
from ganpipe import seeds
from ganpipe.distribute import STRATEGIES
from ganpipe.evaluation import METRICS, PROTOCOL_KEYS, protocol, quality
from ganpipe.features import EXTRACTORS
from ganpipe.losses import LOSSES, REGULARISERS
from ganpipe.models import BUILDERS
from ganpipe.sources import SOURCES, parse_source

REPO = Path(__file__).resolve().parents[1]


def allowed(section, key):
    return set(typing.get_args(typing.get_type_hints(section)[key]))


@pytest.mark.parametrize("registry, section, key", [
    (LOSSES, P.Model, "loss"), (BUILDERS, P.Model, "arch"), (EXTRACTORS, P.Evaluate, "extractor"),
    (dict.fromkeys(STRATEGIES), P.Train, "strategy"),
])
def test_registry_keys_are_the_values_params_accept(registry, section, key):
    assert set(registry) == allowed(section, key)


def test_every_source_kind_is_accepted_by_params_and_nothing_else():
    for kind, source in SOURCES.items():
        example = source.usage.replace("<dir>", "some/dir").replace("<file>", "a.npz")
        assert parse_source(example) == (source, "some/dir" if "<dir>" in source.usage else
                                         "a.npz" if "<file>" in source.usage else None)
        P.from_dict(P.Prepare, {"source": example, "image_size": 28, "channels": 1, "test_fraction": 0.2,
                                "max_train": None, "max_test": None, "classes": None, "on_bad_image": "fail"})
    for bad in ("s3:bucket", "images:", "images", "fashion-mnist:x", "npz: "):
        assert parse_source(bad) is None, bad


def test_loss_regularisers_declare_their_draws_and_log_key():
    for name, loss in LOSSES.items():
        if loss.regulariser is None:
            assert not loss.draws and not loss.second_order, name
        else:
            assert loss.draws and loss.log_key, name


def test_every_metric_name_has_its_protocol_entries(fashion_features):
    real, gen = fashion_features
    cfg = P.from_dict(P.Evaluate, {"extractor": "classifier", "batch_size": 500, "kid_subsets": 10,
                                   "kid_subset_size": 100, "pr_k": 3, "dc_k": 5, "ssim_pairs": 10,
                                   "memorisation_samples": 10, "bootstrap": 5})
    out = quality(gen, real, real.mean(0), np.cov(real, rowvar=False), cfg, 0, "clf")
    for name, metric in METRICS.items():
        assert any(k.startswith(metric.prefixes) for k in out), name  # every registered metric reports
    for k in out:
        prefix = max((p for p in PROTOCOL_KEYS if k.startswith(p)), key=len)
        assert PROTOCOL_KEYS[prefix], k
    # and the protocol records every entry the registry declares (else the report would call two runs'
    # metric "not comparable (unrecorded vs unrecorded)")
    extractor = types.SimpleNamespace(kind="classifier", task="fashion-mnist", path=None)
    recorded = protocol(extractor, len(gen), real, cfg)
    assert {k for keys in PROTOCOL_KEYS.values() for k in keys} <= set(recorded)


def test_every_regulariser_has_its_weight_key_in_params_params_yaml_and_dvc_yaml():
    import yaml

    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["params"]
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["model"]
    hints = typing.get_type_hints(P.Model)
    for name, reg in REGULARISERS.items():
        assert hints[reg.weight_key] is float and reg.on in ("real", "fake"), name
        assert f"model.{reg.weight_key}" in declared and reg.weight_key in defaults, name


@pytest.fixture
def fashion_features():
    rng = np.random.default_rng(0)
    return rng.standard_normal((400, 8)), rng.standard_normal((300, 8)) + 0.1


def test_every_stream_is_drawn_from_somewhere_and_nothing_bypasses_the_helper():
    code = "\n".join(p.read_text() for p in (REPO / "ganpipe").glob("*.py") if p.name != "seeds.py")
    used = set(re.findall(r'seeds\.rng\([^,]+, "([^"]+)"', code)) | set(re.findall(r'seeds\.STREAMS\["([^"]+)"\]', code))
    assert used == set(seeds.STREAMS)
    assert "SeedSequence" not in code  # every spawn key is listed in seeds.STREAMS


def test_streams_are_independent_and_reproducible():
    draws = {s: seeds.rng(7, s, *((0,) if s in ("train.epoch_order", "generate") else ())).random(4)
             for s in seeds.STREAMS if s != "train.step_noise"}  # that one is TensorFlow's (gan.step_noise)
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert (seeds.rng(7, "train.step_noise", 3).random(4) == seeds.rng(7, "train.step_noise", 3).random(4)).all()
    assert (seeds.rng(7, "train.step_noise", 3).random(4) != seeds.rng(7, "train.step_noise", 4).random(4)).all()
    with pytest.raises(ValueError):
        seeds.rng(7, "evaluate", 1)
