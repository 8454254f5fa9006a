"""A MONAI-style dictionary transform for DTSS. It is a plain callable on dicts of NumPy arrays or
torch tensors: it imports neither MONAI nor torch (a tensor is converted with its own methods)."""

import numpy as np

from ._dsma import synthesize


class DTSSd:
    """Replaces ``data[image_key]`` and ``data[label_key]`` by a DTSS-synthesized copy (§3.1)
    with probability ``prob``, like MONAI's ``Rand*d`` transforms.

    ``keys``: the image key (``[4, z, y, x]``, FLAIR, T1, T1ce, T2) and the label key (``[z, y, x]``
    or ``[1, z, y, x]``, integer labels in ``labels``). Every random choice comes from a NumPy
    generator seeded with ``seed`` (``set_random_state`` reseeds it, as MONAI's ``Randomizable``);
    each call draws the seed DTSS gets. ``params`` are the plugin's, e.g. ``monomer_radius=[3, 5]``.
    Outputs have the inputs' types, dtypes and devices.
    """

    def __init__(self, keys=("image", "label"), prob=1.0, seed=0, labels="brats2019",
                 allow_missing_keys=False, **params):
        if len(keys) != 2:
            raise ValueError(f"`keys` must name the image and the label, got {keys!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"`prob` must be in [0, 1], got {prob}")
        self.image_key, self.label_key = keys
        self.prob = prob
        self.labels = labels
        self.allow_missing_keys = allow_missing_keys
        self.params = params
        self.set_random_state(seed)

    def set_random_state(self, seed=None, state=None):
        """Reseeds the transform (MONAI's ``Randomizable`` idiom); returns it."""
        self.rng = state if state is not None else np.random.default_rng(seed)
        return self

    def __call__(self, data):
        d = dict(data)
        missing = [k for k in (self.image_key, self.label_key) if k not in d]
        if missing:
            if self.allow_missing_keys:
                return d
            raise KeyError(f"DTSSd: no {missing[0]!r} in the data (keys: {sorted(d)})")
        seed = int(self.rng.integers(0, 2**63))
        if self.rng.random() >= self.prob:
            return d
        image, restore_image = _to_numpy(d[self.image_key], "image")
        label, restore_label = _to_numpy(d[self.label_key], "label")
        channel = label.ndim == 4
        if channel:
            if label.shape[0] != 1:
                raise ValueError(f"`label` has shape {label.shape}; expected [z, y, x] or [1, z, y, x]")
            label = label[0]
        if label.dtype != np.uint8:
            if not np.all((label >= 0) & (label <= 255) & (np.round(label) == label)):
                raise ValueError("`label` must hold integer labels in 0..=255")
            label = label.astype(np.uint8)
        out_image, out_label = synthesize("dtss", np.asarray(image, dtype=np.float32), label,
                                          seed=seed, labels=self.labels, **self.params)
        if channel:
            out_label = out_label[None]
        d[self.image_key] = restore_image(out_image)
        d[self.label_key] = restore_label(out_label)
        return d


def _to_numpy(value, name):
    """A NumPy view of ``value`` and a function that turns a result back into its type."""
    if isinstance(value, np.ndarray):
        dtype = value.dtype
        return value, lambda out: out.astype(dtype, copy=False)
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        device, dtype = value.device, value.dtype
        array = value.detach().cpu().numpy()

        def back(out):
            import torch  # the caller's tensor says torch is installed

            return torch.from_numpy(np.ascontiguousarray(out)).to(device=device, dtype=dtype)

        return array, back
    # A MONAI MetaTensor is a torch tensor; anything else array-like is read as NumPy.
    try:
        return np.asarray(value), lambda out: out
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"`{name}` must be a NumPy array or a torch tensor, got {type(value).__name__}") from e
