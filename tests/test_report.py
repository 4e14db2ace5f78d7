"""`ganpipe report`'s judgement: intervals (KID's from the standard error of the mean), protocol checks
before any difference is called, floor/ceiling columns, Markdown images."""

from __future__ import annotations

import numpy as np

from ganpipe import metrics as M
from ganpipe import params
from ganpipe.evaluation import quality
from ganpipe.report import Run, metric_rows, protocol_difference, render, write_report

CFG = params.from_dict(params.Evaluate, dict(extractor="classifier", batch_size=100, kid_subsets=100,
                                             kid_subset_size=200, pr_k=3, dc_k=5, ssim_pairs=10,
                                             memorisation_samples=5, bootstrap=20))


def feats(n, seed, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, 8)) + shift


def eval_of(gen, real, seed=0, **protocol):
    mu, sigma = M.feature_stats(real)
    out = quality(gen, real, mu, sigma, CFG, seed, "clf")
    out["protocol"] = {"extractor": "classifier", "extractor_task": "classes", "extractor_sha256": "a" * 64,
                       "feature_dim": 8, "real_split": "test", "n_generated": len(gen), "n_real": len(real),
                       "pr_k": 3, "dc_k": 5, "ssim": "x"} | protocol
    out["reference"] = {"floor_real_train": {"fd_clf": 0.01}, "ceiling_untrained_generator": {"fd_clf": 99.0}}
    return out


def test_kid_interval_is_the_block_interval_not_the_subsets_spread():
    real, gen = feats(1000, 0), feats(1000, 1, shift=0.2)
    _, lo, hi = metric_rows(Run("a", eval=eval_of(gen, real, seed=7)))["kid_clf_mean"]
    k = M.kid(real, gen, CFG.kid_subsets, 200, seed=7)
    assert (lo, hi) == (k.ci95_lo, k.ci95_hi)
    assert hi - lo < 2 * 1.96 * k.std  # the report used to give mean +- 1.96 std


def test_a_protocol_mismatch_is_never_called_a_difference():
    real, gen = feats(1200, 0), feats(1000, 1, shift=0.5)
    a = Run("base", eval=eval_of(gen, real))
    b = Run("fewer-real", eval=eval_of(gen + 0.5, real[:600]))
    assert protocol_difference("fd_clf", a.eval["protocol"], b.eval["protocol"]) == "n_real 1200 vs 600"
    assert protocol_difference("fd_inf_clf", a.eval["protocol"], b.eval["protocol"]) is None
    _, md = render([a, b])
    row = next(line for line in md.splitlines() if line.startswith("| fd_clf |"))
    assert "not comparable (n_real 1200 vs 600)" in row and "differs" not in row
    row = next(line for line in md.splitlines() if line.startswith("| fd_inf_clf |"))
    assert "differs (intervals disjoint)" in row  # FD-infinity compares across real counts
    # another extractor: nothing feature-based compares; an older run without a protocol cannot be checked
    c = Run("other-clf", eval=eval_of(gen, real, extractor_sha256="b" * 64))
    assert protocol_difference("kid_clf_mean", a.eval["protocol"], c.eval["protocol"]) == \
        "extractor_sha256 aaaaaaaaaaaa vs bbbbbbbbbbbb"
    assert "dc_k 5 vs unrecorded" in protocol_difference("density_clf", a.eval["protocol"], {})


def test_floor_ceiling_columns_and_markdown_images(tmp_path):
    real, gen = feats(1200, 0), feats(1000, 1, shift=0.5)
    run = Run("a", eval=eval_of(gen, real), grid=b"\x89PNG fake", losses={"d_loss": ([0, 1], [1.0, 0.5])})
    _, md = render([run])
    assert "| metric | a | floor | ceiling |" in md
    assert next(line for line in md.splitlines() if line.startswith("| fd_clf |")).endswith("| 0.01 | 99 |")
    (tmp_path / "ws").mkdir()
    for name, data in (("metrics/eval.json", None), ("data/generated/plots/samples.png", b"\x89PNG fake")):
        p = tmp_path / "ws" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if data is not None else __import__("json").dumps(run.eval).encode())
    write_report([], tmp_path / "out/r.html", tmp_path / "out/r.md", repo=str(tmp_path / "ws"))
    md = (tmp_path / "out/r.md").read_text()
    assert "![samples workspace](report_samples_0.png)" in md
    assert (tmp_path / "out/report_samples_0.png").read_bytes() == b"\x89PNG fake"


def test_results_split_into_headline_and_details_and_merge_back():
    import json

    from ganpipe.results import merge, split

    real, gen = feats(1200, 0), feats(1000, 1, shift=0.5)
    full = eval_of(gen, real) | {"ssim_pairwise_real": 0.08, "ssim_nn_train_gen_max": 0.9, "ssim_nn_train_samples": 5}
    headline, details = split(full)
    assert set(headline) == {"fd_clf", "fd_inf_clf", "kid_clf_mean", "precision_clf", "recall_clf",
                             "density_clf", "coverage_clf"}
    assert all(isinstance(v, float) for v in headline.values())  # flat: one column per number
    assert "protocol" in details and "fd_clf_ci95_lo" in details and "kid_clf_std" in details
    merged = merge(json.dumps(headline), json.dumps(details))
    assert merged == full
    assert merge(json.dumps(full), None) == full  # a revision from before the split


# the three libraries DVC's renderer names (dvc_render VegaRenderer.SCRIPTS), as vendored
VEGA = {"5.20.2": "4794d0169cb1f3ebad8117fe98ba5bd652dd725905ec0384e832391dbccb03be",
        "5.2.0": "d73157451b3978015ab31dacd55ff90d986ab8663fc0abed50f97b3cd90002cb",
        "6.18.2": "1ba9826431ddc9805e815ad92acc811c819f2bfd32bda2a128b8c4b5070fab5e"}


def test_plain_dvc_plots_use_the_offline_page_with_the_vega_libraries_inline():
    """`.dvc/config`'s plots.html_template: DVC's own `plots show|diff` write a page that needs no network."""
    import configparser
    import hashlib
    import re

    from tests.conftest import REPO

    config = configparser.ConfigParser()
    config.read(REPO / ".dvc/config")
    page = (REPO / ".dvc" / config["plots"]["html_template"]).read_text(encoding="utf8")
    assert page.count("{plot_divs}") == 1 and "{scripts}" not in page and "<script src=" not in page
    assert "cdn." not in page and "https://" not in page.split("<script>")[0]
    scripts = re.findall(r"<script>\n(.*?)\n    </script>", page, re.S)
    digests = sorted(hashlib.sha256(s.encode()).hexdigest() for s in scripts)
    assert digests == sorted(VEGA.values())  # verbatim: minified code holds "}}" and the like
    for version in VEGA:
        assert f'"{version}"' in page


def test_a_revision_from_before_the_pipeline_is_one_line(tmp_path):
    """A commit without params.yaml (the project's history before ganpipe) is refused by name."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import make_repo, sh

    repo = make_repo(tmp_path)
    sh(["git", "rm", "-rq", "--cached", "."], repo)
    (repo / "NOTES.md").write_text("before the pipeline\n")
    sh(["git", "add", "NOTES.md"], repo)
    sh(["git", "commit", "-qm", "notes only"], repo)  # HEAD: no params.yaml in git
    ganpipe = str(Path(sys.prefix) / "bin" / "ganpipe")
    proc = subprocess.run([ganpipe, "report", "HEAD", "-o", str(tmp_path / "r.html")], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: revision 'HEAD': no such git revision or experiment with a params.yaml")
    assert not (tmp_path / "r.html").exists()
