"""NIfTI in and out keeps data and affine; load_case reads the BraTS layout on its input grid."""

import numpy as np
import pytest

import dsma

AFFINE = np.array([
    [0.0, -1.2, 0.0, 90.5],
    [0.9, 0.0, 0.0, -126.0],
    [0.0, 0.0, 2.5, -72.25],
    [0.0, 0.0, 0.0, 1.0],
])


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
def test_write_then_read_keeps_values_and_affine(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((5, 6, 7)) * 100).astype(dtype)
    path = tmp_path / "v.nii.gz"
    dsma.write_nifti(path, data, AFFINE)
    back, affine = dsma.read_nifti(path)
    assert back.shape == (5, 6, 7) and back.dtype == np.float32
    np.testing.assert_array_equal(back, data.astype(np.float32))
    np.testing.assert_allclose(affine, AFFINE, rtol=0, atol=1e-5)  # stored as float32
    if dtype == np.uint8:
        labels, _ = dsma.read_nifti(path, labels=True)
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, data)


def test_a_degenerate_affine_is_refused(tmp_path):
    bad = AFFINE.copy()
    bad[:3, 1] = 0
    with pytest.raises(ValueError, match="`affine` has a zero column"):
        dsma.write_nifti(tmp_path / "v.nii.gz", np.zeros((2, 2, 2), np.float32), bad)
    with pytest.raises(ValueError, match="`array` must have 3 dimensions"):
        dsma.write_nifti(tmp_path / "v.nii.gz", np.zeros((2, 2), np.float32))
    assert not (tmp_path / "v.nii.gz").exists()


def test_load_case_reads_a_brats_folder(tmp_path):
    rng = np.random.default_rng(2)
    case = tmp_path / "BraTS20_Training_007"
    case.mkdir()
    image = rng.standard_normal((4, 6, 7, 8)).astype(np.float32)
    label = rng.choice(np.array([0, 1, 2, 4], np.uint8), size=(6, 7, 8))
    for channel, suffix in enumerate(["flair", "t1", "t1ce", "t2"]):
        dsma.write_nifti(case / f"{case.name}_{suffix}.nii.gz", image[channel], AFFINE)
    dsma.write_nifti(case / f"{case.name}_seg.nii.gz", label, AFFINE)
    loaded = dsma.load_case(case)
    assert loaded["id"] == case.name and loaded["labels"] == "brats2019"
    assert loaded["modalities"] == ["flair", "t1", "t1ce", "t2"]
    np.testing.assert_array_equal(loaded["image"], image)
    np.testing.assert_array_equal(loaded["label"], label)
    np.testing.assert_allclose(loaded["affine"], AFFINE, atol=1e-5)
    np.testing.assert_allclose(loaded["spacing"], [0.9, 1.2, 2.5], atol=1e-6)
    with pytest.raises(ValueError, match="label 4"):
        dsma.load_case(case, labels="brats2023")
