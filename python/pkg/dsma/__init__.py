"""dsma from Python: the Rust implementation of DTSS, MAS, the BraTS metrics and NIfTI I/O over
NumPy arrays, a MONAI-style DTSS transform, the weighted Dice loss for PyTorch, and whole
experiments (``dsma.run``). Nothing here is a second implementation: every computation but the
PyTorch loss (which must run on torch's autograd) is dsma's Rust code.

Arrays follow dsma's layout: images float32 ``[4, z, y, x]`` (FLAIR, T1, T1ce, T2), labels uint8
``[z, y, x]`` in a declared label convention (``brats2019``: ET = 4; ``brats2023``: ET = 3;
``msd``); sizes and spacings a user types are in NIfTI order ``(x, y, z)``.
"""

from ._dsma import (
    DsmaError,
    __version__,
    dice,
    hd95,
    load_case,
    phantom,
    plugins,
    read_nifti,
    regions,
    run,
    synthesize,
    weights,
    write_nifti,
)
from ._dsma import dice_loss_reference
from .losses import weighted_dice_loss
from .transforms import DTSSd

__all__ = [
    "DTSSd",
    "DsmaError",
    "__version__",
    "dice",
    "dice_loss_reference",
    "dtss",
    "hd95",
    "load_case",
    "mas_weights",
    "phantom",
    "plugins",
    "read_nifti",
    "regions",
    "run",
    "synthesize",
    "weighted_dice_loss",
    "weights",
    "write_nifti",
]


def dtss(image, label, seed=0, labels="brats2019", spacing=(1.0, 1.0, 1.0), **params):
    """One DTSS-synthesized copy of a case (paper §3.1): ``(image, label)``.

    Exactly what ``dsma synth --case DIR --seed SEED --n 1`` writes for the same case and seed;
    ``params`` are the plugin's (``dsma plugins --describe dtss``), e.g. ``monomer_radius=[3, 5]``.
    """
    return synthesize("dtss", image, label, seed=seed, labels=labels, spacing=spacing, **params)


def mas_weights(real_scores, synthetic_scores, epoch=0, **params):
    """MAS loss weights (paper §3.2, eqs. 6-13), one per synthetic case, from the current model's
    scores (e.g. mean WT/TC/ET Dice in [0, 1]) of the real and the synthetic training cases.
    ``params``: ``beta``, ``c``, ``score`` (``dsma plugins --describe mas``)."""
    import numpy as np

    real = np.ascontiguousarray(real_scores, dtype=np.float64)
    synthetic = np.ascontiguousarray(synthetic_scores, dtype=np.float64)
    return weights("mas", real, synthetic, epoch=epoch, **params)
