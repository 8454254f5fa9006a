"""The weighted Dice loss of the paper (eqs. 14-15) in PyTorch, for training loops that use MAS
weights. torch is imported when the loss is called, so ``import dsma`` works without it."""


def weighted_dice_loss(pred, target, weights, sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5):
    """``(1/N) sum_n w_n L_dice,n``: the soft Dice loss per sample and region channel, averaged
    over the channels (eq. 14), each sample weighted by ``weights[n]`` (eq. 15).

    ``pred``: logits ``[N, C, z, y, x]`` (probabilities with ``sigmoid=False``); ``target``: the
    region targets, same shape (e.g. WT, TC, ET channels); ``weights``: ``[N]`` (1 for real
    samples, the MAS weight for synthetic ones). Smoothing as MONAI's ``DiceLoss`` (1e-5), which
    dsma's Rust loss (``core/train/src/loss.rs``) uses too. Dividing by N, not by the weights'
    sum, keeps a sample's gradient proportional to its own weight.
    """
    import torch

    if pred.shape != target.shape or pred.dim() < 3:
        raise ValueError(
            f"`pred` {tuple(pred.shape)} and `target` {tuple(target.shape)} must have the same "
            "shape [N, C, spatial...]"
        )
    weights = torch.as_tensor(weights, dtype=pred.dtype, device=pred.device)
    if weights.shape != (pred.shape[0],):
        raise ValueError(f"`weights` has shape {tuple(weights.shape)}; expected ({pred.shape[0]},)")
    p = torch.sigmoid(pred) if sigmoid else pred
    p = p.flatten(2)
    g = target.to(p.dtype).flatten(2)
    intersection = (p * g).sum(-1)
    denominator = p.sum(-1) + g.sum(-1)
    per_sample = (1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)).mean(1)
    return (per_sample * weights).mean()
