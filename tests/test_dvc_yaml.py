"""dvc.yaml declares, for each stage, every params key the stage reads and the code it runs."""

import ast
import re
from pathlib import Path

import yaml

from ganpipe import params
from ganpipe.imports import library_modules
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def _script(stage: dict) -> Path:
    m = re.search(r"(stages/\w+\.py)", stage["cmd"])
    assert m, f"stage command {stage['cmd']!r} does not run a stages/*.py script"
    return REPO / m.group(1)


def _sections_read(script: Path) -> set[str]:
    """Sections the script loads: every params.load("<name>") call (a literal name is required)."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                and getattr(node.func.value, "id", None) == "params":
            assert node.args and isinstance(node.args[0], ast.Constant), f"{script}: params.load needs a literal section name"
            found.add(node.args[0].value)
    return found


def _declared(stage: dict) -> set[str]:
    out = set()
    for entry in stage.get("params", []):
        out |= set(entry) if isinstance(entry, dict) else {entry}
    return out


def test_every_stage_declares_every_key_it_reads():
    for name, stage in DVC["stages"].items():
        script = _script(stage)
        sections = _sections_read(script)
        assert sections, f"{script} reads no params section"
        declared = _declared(stage)
        for section in sections:
            missing = [k for k in params.keys(section) if k not in declared and section not in declared]
            assert not missing, f"stage {name} reads {missing} but dvc.yaml does not declare them"
        extra = [k for k in declared if k.split(".")[0] not in sections]
        assert not extra, f"stage {name} declares {extra} but its script never loads those sections"


def test_every_stage_depends_on_its_script_andlibrary_modules():
    for name, stage in DVC["stages"].items():
        script = _script(stage)
        deps = set(stage.get("deps", []))
        assert str(script.relative_to(REPO)) in deps, f"stage {name} does not depend on its script"
        assert library_modules(script), f"{script} uses no ganpipe module"
        needed = library_modules(script) | library_modules(REPO / "stages/launch.py")  # the launcher runs every stage
        missing = sorted(needed - deps)
        assert not missing, f"stage {name} imports {missing} but dvc.yaml does not list them as deps"
        listed = {d for d in deps if d.startswith("ganpipe/")}
        extra = sorted(listed - needed)
        assert not extra, f"stage {name} lists {extra} as deps but never imports them (needless reruns)"


def test_stage_commands_use_the_project_venv():
    for name, stage in DVC["stages"].items():
        assert stage["cmd"].startswith("sh stages/python.sh "), f"stage {name} must run through stages/python.sh"
        assert "stages/python.sh" in stage["deps"]


def test_the_wrapper_finds_the_venv_above_and_prefers_local_code(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "repo"
    work = root / ".dvc" / "tmp" / "exps" / "tmp123"  # where queued experiments run
    (work / "ganpipe").mkdir(parents=True)
    (work / "ganpipe" / "__init__.py").write_text("WHERE = 'copy'\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    script = work / "probe.py"
    script.write_text("import sys, ganpipe; print(ganpipe.WHERE, sys.executable)\n")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(["sh", str(REPO / "stages/python.sh"), "probe.py"], cwd=work, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "copy" and str(root / ".venv/bin/python") in out.stdout
    none = subprocess.run(["sh", str(REPO / "stages/python.sh"), "probe.py"], cwd=tmp_path, capture_output=True,
                          text=True, env=env)
    assert none.returncode == 1 and "run 'make setup'" in none.stderr


def _declared_outputs() -> set[str]:
    out = set()
    for stage in DVC["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                out |= set(entry) if isinstance(entry, dict) else {entry}
    return out


def test_every_file_the_report_and_plots_read_is_a_stage_output():
    from ganpipe import report

    declared = _declared_outputs()
    wanted = [report.EVAL, report.DETAILS, report.TRAIN, report.GRID] + [report.LOSS_TSV.format(n) for n in report.LOSSES]
    for plot in DVC.get("plots", []):
        if isinstance(plot, dict):
            (spec,) = plot.values()
            wanted += list(spec.get("y", {}))
        else:
            wanted.append(plot)
    for path in wanted:
        assert any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared), \
            f"{path} is read by the report or a plot but no stage declares it as an output"


def test_the_wrapper_keeps_tensorflow_start_up_chatter_out_of_stage_logs(tmp_path):
    import subprocess
    import sys

    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "probe.py").write_text(
        "import os, sys\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1795904243.289771    9879 cudart_stub.cc:31] Could not find cuda drivers\\n')\n"
        "os.write(2, b'E0000 00:00:1795901906.309843    1475 cuda_platform.cc:52] failed call to cuInit: X\\n')\n"
        "os.write(2, b'E0000 00:00:1795901906.309843    1475 real.cc:1] a real error\\n')\n"
        "os.write(2, b'E0000 00:00:1796191153.1    2549 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: x\\n')\n"
        "sys.stderr.write('\\rtrain:  50%|#####     | 1/2'); sys.stderr.flush()\n"
        "print('error: params.yaml: train.g_lr: must be in (0, 1), got 2.0', file=sys.stderr)\n"
        "sys.exit(1)\n")
    run = lambda env: subprocess.run(["sh", str(REPO / "stages/python.sh"), "probe.py"], cwd=tmp_path,  # noqa: E731
                                     capture_output=True, env={"PATH": "/usr/bin:/bin", **env})
    out = run({})
    assert out.returncode == 1
    assert out.stderr == (b"E0000 00:00:1795901906.309843    1475 real.cc:1] a real error\n"
                          b"\rtrain:  50%|#####     | 1/2error: params.yaml: train.g_lr: must be in (0, 1), got 2.0\n")
    assert run({"TF_CPP_MIN_LOG_LEVEL": "0"}).stderr.count(b"\n") == 6  # off: everything passes


def test_the_wrapper_passes_a_huge_line_without_newlines_in_linear_time(tmp_path):
    import subprocess
    import sys
    import time

    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "probe.py").write_text("import os\nfor _ in range(800):\n    os.write(2, b'x' * 65536)\n")
    t0 = time.perf_counter()
    out = subprocess.run(["sh", str(REPO / "stages/python.sh"), "probe.py"], cwd=tmp_path, capture_output=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert len(out.stderr) == 800 * 65536 and set(out.stderr) == {ord("x")}
    assert time.perf_counter() - t0 < 60  # 50 MiB: the quadratic re-splitting before ran past 120 s
