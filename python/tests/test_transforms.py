"""DTSSd: a MONAI-style dictionary transform over NumPy arrays or torch tensors."""

import subprocess
import sys

import numpy as np
import pytest

import dsma


def expected_seed(seed):
    """The seed DTSSd(seed=seed) hands DTSS on its first call: one integer, then the prob draw."""
    return int(np.random.default_rng(seed).integers(0, 2**63))


def test_replaces_image_and_label_with_dtss_of_the_drawn_seed(case):
    t = dsma.DTSSd(keys=("img", "seg"), seed=11)
    out = t({"img": case["image"], "seg": case["label"], "meta": "kept"})
    image, label = dsma.dtss(case["image"], case["label"], seed=expected_seed(11))
    assert out["meta"] == "kept"
    assert out["img"].tobytes() == image.tobytes() and out["seg"].tobytes() == label.tobytes()


def test_channel_first_labels_and_dtypes_come_back_as_they_went_in(case):
    t = dsma.DTSSd(seed=3)
    data = {"image": case["image"].astype(np.float64), "label": case["label"][None].astype(np.int64)}
    out = t(data)
    assert out["image"].dtype == np.float64 and out["label"].dtype == np.int64
    assert out["label"].shape == (1, *case["label"].shape)
    _, label = dsma.dtss(case["image"], case["label"], seed=expected_seed(3))
    np.testing.assert_array_equal(out["label"][0], label)


def test_prob_zero_leaves_the_data_alone_and_missing_keys(case):
    data = {"image": case["image"], "label": case["label"]}
    out = dsma.DTSSd(prob=0.0)(data)
    assert out["image"] is case["image"]
    with pytest.raises(KeyError, match="'label'"):
        dsma.DTSSd()({"image": case["image"]})
    assert dsma.DTSSd(allow_missing_keys=True)({"image": 1}) == {"image": 1}


def test_importing_dsma_imports_neither_torch_nor_monai():
    code = "import sys, dsma; t = dsma.DTSSd(); print('torch' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]


def test_torch_tensors_in_torch_tensors_out(case):
    torch = pytest.importorskip("torch", reason="torch is not installed: tensor inputs are not tested")
    data = {"image": torch.from_numpy(case["image"]), "label": torch.from_numpy(case["label"]).long()}
    out = dsma.DTSSd(seed=5)(data)
    assert isinstance(out["image"], torch.Tensor) and out["label"].dtype == torch.int64
    image, label = dsma.dtss(case["image"], case["label"], seed=expected_seed(5))
    assert out["image"].numpy().tobytes() == image.tobytes()
    np.testing.assert_array_equal(out["label"].numpy(), label)
