"""Whole experiments from Python: dsma.run and `python -m dsma run` go through the entry point the
dsma binary calls (dsma_train::pipeline::run_experiment), in this process, Python plugins included."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import dsma
from conftest import EXAMPLE_PLUGIN, tiny_experiment

ROWS = """  - label: baseline
  - label: shifted
    synthesizer: {name: intensity_shift, params: {shift: 0.2}}
    weighter: {name: score_ratio}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny run of two rows, the second with the example Python plugins (named in the file)."""
    dir = tmp_path_factory.mktemp("run")
    exp = tiny_experiment(dir, ROWS, plugins=[EXAMPLE_PLUGIN])
    out = dir / "out"
    outcome = dsma.run(exp, out=out, cache=dir / "cache", progress=False)
    return exp, out, outcome


def test_run_returns_the_table_as_rows(finished):
    exp, out, outcome = finished
    assert outcome["name"] == "tiny" and pathlib.Path(outcome["out"]) == out
    assert [(r["row"], r["dataset"]) for r in outcome["rows"]] == [("baseline", "Phantom"), ("shifted", "Phantom")]
    for row in outcome["rows"]:
        wt, tc, et, ave = row["regions"]
        assert all(0 <= v <= 100 for v in (wt, tc, et))
        assert ave == pytest.approx((wt + tc + et) / 3, abs=1e-9)
        assert row["metric"] == "Dice" and row["repeats"] == 1
    # The table printed and written to OUT/table.md are the same text.
    assert (out / "table.md").read_text() == outcome["table"]
    assert "| shifted |" in outcome["table"]


def test_each_result_is_the_run_folders_results_json(finished):
    _, out, outcome = finished
    for r in outcome["results"]:
        (path,) = out.glob(f"runs/*/{r['row']}/rep-{r['repeat']}/results.json")
        on_disk = json.loads(path.read_text())
        assert on_disk["row"] == r["row"] and on_disk["cases"] == r["cases"]
    # The rows' cells are the means of the runs' per-case WT Dice (in %).
    for row, result in zip(outcome["rows"], outcome["results"]):
        assert row["regions"][0] == pytest.approx(100 * result["mean"]["WT"]["dice"], abs=1e-9)


def test_the_python_weighter_weighed_the_synthetic_cases(finished):
    _, out, _ = finished
    (path,) = out.glob("runs/*/shifted/rep-0/weights.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,sample,source,real_case,score,weight" and len(lines) > 1
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    # score_ratio: min(1, score / mean real score), so every weight under 1 is score × the same factor.
    factors = {round(float(r["weight"]) / float(r["score"]), 3) for r in rows if float(r["weight"]) < 1}
    assert all(0 <= float(r["weight"]) <= 1 for r in rows) and len(factors) <= 1


def test_python_m_dsma_run_finds_the_runs_finished(finished, dsma_bin):
    exp, out, outcome = finished
    cli = subprocess.run([sys.executable, "-m", "dsma", "run", str(exp), "--out", str(out), "--cache",
                          str(out.parent / "cache"), "--quiet"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert outcome["table"] in cli.stdout
    # The binary renders the same table from the same folder.
    table = subprocess.run([dsma_bin, "table", str(out)], capture_output=True, text=True, check=True)
    assert table.stdout.strip() in outcome["table"]


def test_errors_exit_one_with_the_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrows: [{label: a}]\nmodel: {name: unet4d}\n")
    cli = subprocess.run([sys.executable, "-m", "dsma", "run", str(bad)], capture_output=True, text=True)
    assert cli.returncode == 1
    assert cli.stderr.startswith("error: ") and "bad.yaml" in cli.stderr


def test_the_binary_runs_python_plugins_alike(finished, dsma_bin, tmp_path):
    """`dsma run EXP --plugin file.py` (a binary built with --features python) trains the same
    runs as dsma.run: same seeds, same table."""
    probe = subprocess.run([dsma_bin, "plugins", "--plugin", str(EXAMPLE_PLUGIN)], capture_output=True, text=True)
    if "no Python in it" in probe.stderr:
        if os.environ.get("DSMA_REQUIRE_PYTHON_PLUGINS"):
            pytest.fail(f"{dsma_bin} was built without --features python")
        pytest.skip(f"{dsma_bin} was built without --features python")
    assert probe.returncode == 0, probe.stderr
    _, _, outcome = finished
    exp = tiny_experiment(tmp_path, ROWS)  # the plugin comes from --plugin this time
    out = tmp_path / "out"
    cli = subprocess.run([dsma_bin, "run", str(exp), "--plugin", str(EXAMPLE_PLUGIN), "--out", str(out),
                          "--cache", str(tmp_path / "cache"), "--quiet"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert (out / "table.md").read_text() == outcome["table"]


def test_a_python_exception_fails_the_binarys_run(dsma_bin, tmp_path):
    plugin = tmp_path / "boom.py"
    plugin.write_text("class Boom:\n    name, kind = 'boom', 'synthesizer'\n"
                      "    def synthesize(self, image, label, seed):\n        raise ValueError('no tumour here')\n")
    probe = subprocess.run([dsma_bin, "plugins", "--plugin", str(plugin)], capture_output=True, text=True)
    if "no Python in it" in probe.stderr:
        pytest.skip(f"{dsma_bin} was built without --features python")
    exp = tiny_experiment(tmp_path, "  - label: boom\n    synthesizer: {name: boom}\n", plugins=[plugin], stage1=1)
    cli = subprocess.run([dsma_bin, "run", str(exp), "--out", str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True)
    assert cli.returncode == 1
    assert "plugin `boom` failed: synthesize() raised ValueError: no tumour here (at " in cli.stderr
    assert "boom.py:4, in synthesize)" in cli.stderr
