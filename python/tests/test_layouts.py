"""Files written by hand (the NIfTI-1 layout byte by byte, not by dsma) read as they were written:
a 3-D volume through read_nifti, and a Decathlon Task01 case through load_case."""

import json
import struct

import numpy as np

import dsma

FLOAT32, UINT8 = 16, 2


def nifti1(data, datatype, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    """A .nii file's bytes: the 348-byte header (sform = spacing and origin), 4 bytes of no
    extension, then `data` in x-fastest order (numpy's C order of a [..., z, y, x] array)."""
    shape_xyz = data.shape[::-1]
    dim = [len(shape_xyz), *shape_xyz] + [1] * (7 - len(shape_xyz))
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, *dim)
    struct.pack_into("<hh", h, 70, datatype, data.dtype.itemsize * 8)
    struct.pack_into("<8f", h, 76, 1.0, *spacing, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<fff", h, 108, 352.0, 1.0, 0.0)
    struct.pack_into("<B", h, 123, 2)  # millimetres
    struct.pack_into("<hh", h, 252, 0, 1)  # qform_code 0, sform_code 1
    for row in range(3):
        srow = [0.0, 0.0, 0.0, origin[row]]
        srow[row] = spacing[row]
        struct.pack_into("<4f", h, 280 + 16 * row, *srow)
    h[344:348] = b"n+1\0"
    return bytes(h) + b"\0\0\0\0" + data.tobytes()


def test_read_nifti_of_a_hand_written_file(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # z=2, y=3, x=4
    (tmp_path / "v.nii").write_bytes(nifti1(data, FLOAT32, spacing=(0.5, 2.0, 3.0), origin=(-1, 2, 7)))
    back, affine = dsma.read_nifti(tmp_path / "v.nii")
    np.testing.assert_array_equal(back, data)
    np.testing.assert_array_equal(affine, [[0.5, 0, 0, -1], [0, 2, 0, 2], [0, 0, 3, 7], [0, 0, 0, 1]])


def test_load_case_of_a_decathlon_image(tmp_path):
    # Channels in the file as dataset.json declares them: T2w, FLAIR, T1w, t1gd.
    rng = np.random.default_rng(3)
    channels = rng.standard_normal((4, 2, 3, 4)).astype(np.float32)
    label = rng.choice(np.array([0, 1, 2, 3], np.uint8), size=(2, 3, 4))
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr/BRATS_001.nii").write_bytes(nifti1(channels, FLOAT32))
    (tmp_path / "labelsTr/BRATS_001.nii").write_bytes(nifti1(label, UINT8))
    (tmp_path / "dataset.json").write_text(json.dumps({
        "name": "BRATS", "numTraining": 1, "test": [],
        "modality": {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "t1gd"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "training": [{"image": "./imagesTr/BRATS_001.nii", "label": "./labelsTr/BRATS_001.nii"}],
    }))
    case = dsma.load_case(tmp_path / "imagesTr/BRATS_001.nii", labels="msd")
    assert case["id"] == "BRATS_001" and case["labels"] == "msd"
    # dsma's channel order is FLAIR, T1, T1ce, T2: the file's channels 1, 2, 3, 0.
    np.testing.assert_array_equal(case["image"], channels[[1, 2, 3, 0]])
    np.testing.assert_array_equal(case["label"], label)
