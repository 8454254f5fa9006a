"""Dice, HD95 and the BraTS regions against values computed by hand."""

import numpy as np
import pytest

import dsma


def test_dice_is_twice_the_overlap_over_the_sizes():
    rng = np.random.default_rng(0)
    a = rng.random((9, 8, 7)) < 0.3
    b = rng.random((9, 8, 7)) < 0.4
    expected = 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))
    assert dsma.dice(a, b) == pytest.approx(expected, abs=1e-15)
    # uint8 0/1 masks are the same masks.
    assert dsma.dice(a.astype(np.uint8), b.astype(np.uint8)) == dsma.dice(a, b)


def test_dice_with_an_empty_truth():
    empty = np.zeros((3, 3, 3), bool)
    some = empty.copy()
    some[1, 1, 1] = True
    assert dsma.dice(empty, empty) == 1.0
    assert dsma.dice(some, empty) == 0.0
    assert np.isnan(dsma.dice(empty, empty, empty="nan"))


def test_hd95_of_two_voxels_is_their_distance_in_mm():
    a = np.zeros((5, 6, 12), bool)
    b = np.zeros((5, 6, 12), bool)
    a[2, 3, 1] = True
    b[2, 3, 4] = True  # 3 voxels apart along x, the last array axis
    assert dsma.hd95(a, b) == pytest.approx(3.0)
    # spacing is (x, y, z): x voxels of 2 mm put them 6 mm apart; z spacing does not matter here.
    assert dsma.hd95(a, b, spacing=(2.0, 1.0, 5.0)) == pytest.approx(6.0)
    c = np.zeros_like(a)
    c[4, 3, 1] = True  # 2 voxels apart along z
    assert dsma.hd95(a, c, spacing=(2.0, 1.0, 5.0)) == pytest.approx(10.0)


def test_hd95_with_an_empty_mask():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    b[1, 1, 1] = True
    assert dsma.hd95(a, a) == 0.0
    assert np.isnan(dsma.hd95(a, b))
    assert dsma.hd95(a, b, empty="brats_penalty") == pytest.approx(373.13)


@pytest.mark.parametrize("labels,et", [("brats2019", 4), ("brats2023", 3)])
def test_regions_follow_the_declared_convention(labels, et):
    label = np.array([0, 1, 2, et, 0, 1], np.uint8).reshape(1, 2, 3)
    r = dsma.regions(label, labels=labels)
    assert r["WT"].ravel().tolist() == [False, True, True, True, False, True]
    assert r["TC"].ravel().tolist() == [False, True, False, True, False, True]
    assert r["ET"].ravel().tolist() == [False, False, False, True, False, False]
    assert all(m.dtype == bool and m.shape == (1, 2, 3) for m in r.values())
