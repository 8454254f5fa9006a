"""The PyTorch weighted Dice loss: eqs. 14-15 by hand, and dsma's Rust loss on the same inputs."""

import math

import numpy as np
import pytest

import dsma

torch = pytest.importorskip("torch", reason="torch is not installed: the PyTorch loss is not tested (pip install torch)")


def test_one_voxel_pair_by_hand():
    # sigmoid(0) = 0.5 on both voxels, target [1, 0]: 2·0.5 / (1 + 1) with ε = 1e-5 smoothing.
    pred = torch.zeros(1, 1, 2, 1, 1)
    target = torch.tensor([1.0, 0.0]).reshape(1, 1, 2, 1, 1)
    expected = 1 - (2 * 0.5 + 1e-5) / (2 + 1e-5)
    loss = dsma.weighted_dice_loss(pred, target, torch.ones(1))
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    # Eq. 15 divides by N: weights (2, 0) on two copies give (2·L + 0) / 2 = L.
    two = dsma.weighted_dice_loss(pred.repeat(2, 1, 1, 1, 1), target.repeat(2, 1, 1, 1, 1),
                                  torch.tensor([2.0, 0.0]))
    assert two.item() == pytest.approx(expected, abs=1e-7)


def test_matches_dsma_rust_loss():
    rng = np.random.default_rng(5)
    for n, c, size in [(2, 3, (4, 5, 6)), (3, 3, (8, 8, 8)), (1, 2, (3, 3, 3))]:
        logits = rng.normal(0, 2, (n, c, *size)).astype(np.float32)
        targets = (rng.random((n, c, *size)) < 0.3).astype(np.float32)
        weights = rng.random(n).astype(np.float32)
        rust = dsma.dice_loss_reference(logits, targets, weights)
        ours = dsma.weighted_dice_loss(torch.from_numpy(logits), torch.from_numpy(targets),
                                       torch.from_numpy(weights)).item()
        assert math.isclose(ours, rust, abs_tol=1e-6), (n, c, size, ours, rust)


def test_a_zero_weight_removes_the_sample_from_the_gradient():
    rng = np.random.default_rng(6)
    logits = torch.tensor(rng.normal(0, 1, (2, 3, 4, 4, 4)), dtype=torch.float32, requires_grad=True)
    targets = torch.tensor(rng.random((2, 3, 4, 4, 4)) < 0.4, dtype=torch.float32)
    dsma.weighted_dice_loss(logits, targets, torch.tensor([0.0, 1.0])).backward()
    assert torch.count_nonzero(logits.grad[0]) == 0
    assert torch.count_nonzero(logits.grad[1]) > 0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="`weights` has shape"):
        dsma.weighted_dice_loss(torch.zeros(2, 1, 2, 2, 2), torch.zeros(2, 1, 2, 2, 2), torch.ones(3))
    with pytest.raises(ValueError, match="must have the same shape"):
        dsma.weighted_dice_loss(torch.zeros(2, 1, 2, 2, 2), torch.zeros(2, 1, 2, 2, 3), torch.ones(2))
