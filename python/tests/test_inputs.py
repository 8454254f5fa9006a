"""Bad input: each is a Python exception that names the argument and says what was expected."""

import numpy as np
import pytest

import dsma


def test_wrong_dtype_names_the_argument(case):
    with pytest.raises(TypeError, match=r"`image` must have dtype float32.*got float64"):
        dsma.dtss(case["image"].astype(np.float64), case["label"])
    with pytest.raises(TypeError, match=r"`label` must have dtype uint8.*got int64"):
        dsma.dtss(case["image"], case["label"].astype(np.int64))


def test_not_an_array_names_the_argument(case):
    with pytest.raises(TypeError, match=r"`image` must be a numpy.ndarray.*got list"):
        dsma.dtss([[1.0]], case["label"])


def test_wrong_shape_names_the_argument(case):
    with pytest.raises(ValueError, match=r"`image` must hold 4 modalities.*\[3, 24, 28, 32\]"):
        dsma.dtss(case["image"][:3], case["label"])
    with pytest.raises(ValueError, match=r"`image` must have 4 dimensions.*\[24, 28, 32\]"):
        dsma.dtss(case["image"][0], case["label"])
    with pytest.raises(ValueError, match=r"`label` has shape \[24, 28, 31\], the image's \[z, y, x\] is \[24, 28, 32\]"):
        dsma.dtss(case["image"], case["label"][:, :, :31])


def test_nan_image_is_refused(case):
    image = case["image"].copy()
    image[2, 5, 5, 5] = np.nan
    image[0, 1, 1, 1] = np.inf
    with pytest.raises(ValueError, match=r"`image` holds 2 non-finite"):
        dsma.dtss(image, case["label"])


def test_labels_outside_the_convention_are_refused(case):
    label = case["label"].copy()
    label[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"`label` holds label 3, outside the brats2019 convention"):
        dsma.dtss(case["image"], label)
    # The same map is valid once declared BraTS 2023 (ET = 3) if it has no 4.
    label[label == 4] = 3
    dsma.dtss(case["image"], label, labels="brats2023")
    with pytest.raises(ValueError, match="`labels`"):
        dsma.dtss(case["image"], label, labels="brats2042")


def test_unknown_plugin_and_parameter(case):
    with pytest.raises(ValueError, match=r"unknown synthesizer `dts`.*dtss"):
        dsma.synthesize("dts", case["image"], case["label"])
    with pytest.raises(ValueError, match=r"plugin `dtss`: parameter `radius`: unknown field"):
        dsma.dtss(case["image"], case["label"], radius=3)


def test_metric_masks(case):
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match=r"`pred` has shape \[4, 4, 4\] and `truth` \[4, 4, 5\]"):
        dsma.dice(a, np.zeros((4, 4, 5), bool))
    with pytest.raises(ValueError, match=r"`truth` holds 2; a uint8 mask must hold only 0 and 1"):
        dsma.dice(a, np.full((4, 4, 4), 2, np.uint8))
    with pytest.raises(TypeError, match=r"`pred` must have dtype bool.*got float32"):
        dsma.dice(a.astype(np.float32), a)
    with pytest.raises(ValueError, match=r"`spacing` must be three positive"):
        dsma.hd95(a, a, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match=r"`mode` = \"max\""):
        dsma.hd95(a, a, mode="max")


def test_missing_files_are_os_errors(tmp_path):
    with pytest.raises(OSError, match="nothing"):
        dsma.read_nifti(tmp_path / "nothing.nii.gz")
    with pytest.raises(Exception, match="nothing"):
        dsma.load_case(tmp_path / "nothing")
