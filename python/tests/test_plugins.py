"""Plugins written in Python: registered by name, their outputs checked as a shared library's,
their exceptions reported with the plugin's name and the traceback's last line."""

import textwrap

import numpy as np
import pytest

import dsma
from conftest import EXAMPLE_PLUGIN


def plugin_file(tmp_path, body, name="bad.py"):
    path = tmp_path / name
    path.write_text("import numpy as np\n\n" + textwrap.dedent(body))
    return path


def test_the_example_registers_a_synthesizer_and_a_weighter():
    infos = {i["name"]: i for i in dsma.plugins([EXAMPLE_PLUGIN])}
    assert infos["intensity_shift"]["kind"] == "synthesizer"
    assert infos["intensity_shift"]["defaults"] == {"shift": 0.1}
    assert infos["intensity_shift"]["source"].endswith("intensity_shift.py")
    assert infos["score_ratio"]["kind"] == "weighter"
    assert infos["dtss"]["source"] == "builtin"


def test_the_example_synthesizer_shifts_each_modality_inside_the_tumour(case):
    image, label = dsma.synthesize("intensity_shift", case["image"], case["label"], seed=4,
                                   plugins=[EXAMPLE_PLUGIN], shift=0.5)
    np.testing.assert_array_equal(label, case["label"])
    diff = image.astype(np.float64) - case["image"]
    tumour = case["label"] > 0
    assert np.all(diff[:, ~tumour] == 0)
    for channel in diff:
        inside = channel[tumour]
        # One offset per modality (float32 rounding of intensities in the hundreds aside).
        assert np.ptp(inside) < 1e-3 and 0 < abs(inside[0]) <= 0.5 + 1e-3


def test_the_example_weighter():
    w = dsma.weights("score_ratio", np.array([0.5, 0.7]), np.array([0.3, 0.9]), plugins=[EXAMPLE_PLUGIN])
    np.testing.assert_allclose(w, [0.5, 1.0])


SYNTH = """
class Bad:
    name, kind = "bad", "synthesizer"
    def synthesize(self, image, label, seed):
        {body}
"""


@pytest.mark.parametrize("body,message", [
    ("raise ValueError('boom')", r"plugin `bad` failed: synthesize\(\) raised ValueError: boom \(at .*bad.py:7, in synthesize\)"),
    ("return image[:, 1:], label", r"plugin `bad` failed: returned `image` of shape \[4, 23, 28, 32\] for a case of shape \[4, 24, 28, 32\]"),
    ("return image, label.astype(np.int64)", r"plugin `bad` failed: returned `label` must have dtype uint8"),
    ("return image * np.nan, label", r"plugin `bad` failed: returned `image` holds \d+ non-finite"),
    ("return image, label * 0 + 3", r"plugin `bad` failed: returned `label` holds label 3, outside the brats2019"),
    ("return image", r"plugin `bad` failed: returned ndarray from synthesize\(\); expected a tuple \(image, label\)"),
])
def test_bad_synthesizer_outputs_fail_with_the_plugin_name(tmp_path, case, body, message):
    path = plugin_file(tmp_path, SYNTH.format(body=body))
    with pytest.raises(dsma.DsmaError, match=message):
        dsma.synthesize("bad", case["image"], case["label"], plugins=[path])


@pytest.mark.parametrize("body,message", [
    ("class A:\n    name, kind = 'a', 'synthesizer'\n", r"class `A` \(synthesizer `a`\) has no method synthesize\(self, image, label, seed\)"),
    ("class A:\n    name, kind = 'a', 'weighter'\n    def synthesize(self): pass\n", r"has no method weights\(self, epoch, real, synthetic\)"),
    ("class A:\n    kind = 'synthesizer'\n", r"class `A` \(synthesizer\) has no `name"),
    ("class A:\n    name, kind = 'a', 'model'\n", r"kind = \"model\"; expected \"synthesizer\" or \"weighter\""),
    ("x = 1\n", r"defines no plugin class"),
    ("import not_a_module\n", r"could not be run: ModuleNotFoundError: No module named 'not_a_module'"),
    ("class A:\n    name, kind = 'dtss', 'synthesizer'\n    def synthesize(self, i, l, s): pass\n", r"synthesizer `dtss` is already registered \(built in\)"),
])
def test_bad_plugin_files_are_refused_at_load(tmp_path, body, message):
    path = plugin_file(tmp_path, body)
    with pytest.raises(Exception, match=message) as e:
        dsma.plugins([path])
    assert "bad.py" in str(e.value)


def test_parameters_are_checked_against_the_defaults(case):
    with pytest.raises(ValueError, match=r"plugin `intensity_shift`: parameter `shfit`: unknown field, expected one of \[\"shift\"\]"):
        dsma.synthesize("intensity_shift", case["image"], case["label"], plugins=[EXAMPLE_PLUGIN], shfit=1)


@pytest.mark.parametrize("body,message", [
    ("return [1.0]", r"plugin `w` failed: returned 1 weights for 2 synthetic cases"),
    ("return [1.0, -1.0]", r"returned weight -1 for synthetic case 1; expected a finite weight ≥ 0"),
    ("return 'no'", r"returned str from weights\(\); expected a sequence of floats"),
    ("raise RuntimeError('nope')", r"plugin `w` failed: weights\(\) raised RuntimeError: nope"),
])
def test_bad_weighter_outputs(tmp_path, body, message):
    path = plugin_file(tmp_path, f"""
class W:
    name, kind = "w", "weighter"
    def weights(self, epoch, real, synthetic):
        {body}
""")
    with pytest.raises(dsma.DsmaError, match=message):
        dsma.weights("w", np.array([0.5]), np.array([0.4, 0.6]), plugins=[path])
