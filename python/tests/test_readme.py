"""The README's Python example runs as printed (all but its last line, which trains the quickstart)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_readme_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="torch is not installed: the README example uses it")
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    lines = block.strip().splitlines()
    assert lines[-1].startswith("result = dsma.run(")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec("\n".join(lines[:-1]), scope)
    assert 0.0 <= scope["loss"].item() <= 1.0
    assert (tmp_path / "synthetic_seg.nii.gz").is_file()
    assert scope["w"].shape == (3,)
