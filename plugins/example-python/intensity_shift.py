"""A dsma plugin written in Python: one synthesizer and one weighter (protocol: README.md).

Load it with `--plugin plugins/example-python/intensity_shift.py` (`python -m dsma run`, or a dsma
binary built with `--features python`) and name it in a row:
`synthesizer: {name: intensity_shift, params: {shift: 0.2}}`, `weighter: {name: score_ratio}`.
"""
import numpy as np


class IntensityShift:
    """Adds one random offset per modality inside the tumour."""

    name, kind, version = "intensity_shift", "synthesizer", "0.1.0"
    defaults = {"shift": 0.1}

    def __init__(self, shift):
        self.shift = float(shift)

    def synthesize(self, image, label, seed):
        rng = np.random.default_rng(seed)
        out = image.copy()
        for channel in out:
            channel[label > 0] += rng.uniform(-self.shift, self.shift)
        return out, label


class ScoreRatio:
    """Weighs each synthetic case by its score over the mean real score, at most 1."""

    name, kind = "score_ratio", "weighter"

    def weights(self, epoch, real, synthetic):
        return np.minimum(1.0, synthetic / max(float(real.mean()), 1e-6))
