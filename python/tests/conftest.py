"""Shared fixtures: the dsma binary (for the tests that compare with the CLI), a phantom case
written in the BraTS layout, and tiny experiment files."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

import dsma

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE_PLUGIN = ROOT / "plugins" / "example-python" / "intensity_shift.py"


@pytest.fixture(scope="session")
def dsma_bin():
    """The dsma binary: $DSMA_BIN, else target/debug or target/release of this repository."""
    for candidate in [os.environ.get("DSMA_BIN"), ROOT / "target/debug/dsma", ROOT / "target/release/dsma"]:
        if candidate and pathlib.Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("DSMA_REQUIRE_BIN"):
        pytest.fail("DSMA_REQUIRE_BIN is set but no dsma binary was found (cargo build)")
    pytest.skip("no dsma binary (cargo build, or set DSMA_BIN) to compare with")


@pytest.fixture(scope="session")
def case_dir(tmp_path_factory, dsma_bin):
    """One phantom case (32×32×24) in the BraTS layout, written by `dsma phantom`."""
    out = tmp_path_factory.mktemp("phantom")
    subprocess.run([dsma_bin, "phantom", "--out", str(out), "--cases", "1", "--size", "32,32,24",
                    "--seed", "4"], check=True, capture_output=True)
    (case,) = [p for p in out.iterdir() if p.is_dir()]
    return case


@pytest.fixture
def case():
    """A phantom case in memory (x, y, z = 32, 28, 24)."""
    return dsma.phantom(size=[32, 28, 24], seed=2)


def tiny_experiment(dir, rows, name="tiny", plugins=None, stage1=2, stage2=1):
    """A tiny experiment file (phantom 24×24×16, U-Net base 4 depth 2, 16³ patches)."""
    text = f"""name: {name}
datasets:
  - name: Phantom
    kind: phantom
    path: {dir / 'phantom'}
    phantom: {{cases: 6, size: [24, 24, 16], seed: 3}}
model: {{name: unet3d, params: {{base_width: 4, depth: 2}}}}
train:
  stage1: {{epochs: {stage1}, lr: 3.0e-3}}
  stage2: {{epochs: {stage2}, lr: 1.0e-4}}
  batch: 2
  patch: {{size: [16, 16, 16], tumour_share: 1.0}}
  checkpoint_every: 1
eval:
  window: {{patch: [16, 16, 16], overlap: 0.25}}
"""
    if plugins:
        text += "plugins: [" + ", ".join(str(p) for p in plugins) + "]\n"
    text += "rows:\n" + rows
    path = dir / f"{name}.yaml"
    path.write_text(text)
    return path


def as_f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)
