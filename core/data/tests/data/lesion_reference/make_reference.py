#!/usr/bin/env python3
"""Builds the lesion-wise reference of dsma's metric tests with the official BraTS evaluation.

Writes `cases/<name>_{pred,ref}.nii.gz` (label maps in the BraTS 2023 convention: 1 NETC, 2 SNFH,
3 ET) and `expected.json`: for each case its spacing (x, y, z mm) and, per region (wt, tc, et), the
package's global and lesion-wise numbers as `evaluate_single_exam` computes them from the files
with the glioma config. Non-finite values are written as the strings "nan" and "inf".

Run once, in a virtual environment (the tests themselves need no Python):
    python3 -m venv /tmp/brats-venv
    /tmp/brats-venv/bin/pip install BraTS_evaluation==0.0.10 panoptica==2.1.7 numpy==2.2.6 scipy==1.17.1
    /tmp/brats-venv/bin/python make_reference.py
"""
import json
import math
import os
import sys
import warnings
from importlib.metadata import version

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (20, 28, 30)  # (z, y, x)
KEYS = ["tp", "fp", "fn", "sq_dsc", "pq_dsc", "sq_hd95", "sq_nsd",
        "global_bin_dsc", "global_bin_hd95", "global_bin_nsd"]


def tumour(a, c, r):
    """A sphere of oedema (2) of radius r around c (z, y, x), enhancing rim (3) inside, core (1)."""
    zz, yy, xx = np.indices(a.shape)
    d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    a[d <= r] = 2
    a[d <= 0.65 * r] = 3
    a[d <= 0.3 * r] = 1
    return a


def blank():
    return np.zeros(SHAPE, np.uint8)


def two():
    return tumour(tumour(blank(), (7, 8, 8), 4.5), (12, 19, 21), 5)


def random_case(seed):
    rng = np.random.default_rng(seed)
    ref = blank()
    for _ in range(int(rng.integers(2, 6))):
        c = [int(rng.integers(3, s - 3)) for s in SHAPE]
        tumour(ref, c, float(rng.uniform(1.5, 5)))
    pred = ref.copy()
    if rng.random() < 0.7:
        pred = np.roll(pred, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))
    noise = rng.random(SHAPE) < 0.004
    pred[noise] = rng.choice([0, 1, 2, 3], size=int(noise.sum()))
    for _ in range(int(rng.integers(0, 3))):
        c = [int(rng.integers(2, s - 2)) for s in SHAPE]
        tumour(pred, c, float(rng.uniform(1, 3)))
    return pred, ref


def cases():
    """(name, pred, ref, spacing x,y,z)."""
    out = []
    ref = two()
    out.append(("exact", ref.copy(), ref, (1, 1, 1)))
    out.append(("shift_x1", np.roll(ref, 1, axis=2), ref, (1, 1, 1)))
    out.append(("shift_z2", np.roll(ref, 2, axis=0), ref, (1, 1, 1)))
    eroded = ref * ndi.binary_erosion(ref > 0)
    out.append(("eroded", eroded.astype(np.uint8), ref, (1, 1, 1)))
    dilated = ref.copy()
    dilated[(ndi.binary_dilation(ref > 0)) & (ref == 0)] = 2
    out.append(("dilated", dilated, ref, (1, 1, 1)))
    one = tumour(blank(), (10, 14, 15), 6)
    split = one.copy()
    split[:, :, 14:16] = 0
    out.append(("split", split, one, (1, 1, 1)))
    pair = tumour(tumour(blank(), (10, 14, 8), 4), (10, 14, 20), 4)
    bridged = pair.copy()
    bridged[8:12, 12:16, 8:21] = np.where(bridged[8:12, 12:16, 8:21] == 0, 2, bridged[8:12, 12:16, 8:21])
    out.append(("merged", bridged, pair, (1, 1, 1)))
    three = tumour(two(), (4, 22, 6), 3)
    out.append(("missed", two(), three, (1, 1, 1)))
    out.append(("spurious", three, two(), (1, 1, 1)))
    out.append(("empty_pred", blank(), ref, (1, 1, 1)))
    out.append(("empty_ref", ref.copy(), blank(), (1, 1, 1)))
    out.append(("both_empty", blank(), blank(), (1, 1, 1)))
    no_et = ref.copy()
    no_et[no_et == 3] = 1
    out.append(("et_missed", no_et, ref, (1, 1, 1)))
    out.append(("disjoint", tumour(blank(), (5, 5, 24), 3), tumour(blank(), (14, 20, 6), 3), (1, 1, 1)))
    edge = tumour(blank(), (0, 0, 15), 5)
    out.append(("edge", np.roll(edge, 1, axis=2), edge, (1, 1, 1)))
    # One prediction overlapping two references equally (a tie), and a case where the optimal
    # one-to-one matching differs from a greedy one.
    tie_ref, tie_pred = blank(), blank()
    tie_ref[2:8, 10:14, 10:14] = 3
    tie_ref[10:16, 10:14, 10:14] = 3
    tie_pred[5:13, 10:14, 10:14] = 3
    out.append(("tie", tie_pred, tie_ref, (1, 1, 1)))
    g_ref, g_pred = blank(), blank()
    g_ref[2:8, 4:8, 0:10] = 3
    g_ref[2:8, 4:8, 12:22] = 3
    g_pred[2:8, 4:8, 0:2] = 3
    g_pred[2:8, 4:8, 5:16] = 3
    out.append(("optimal_matching", g_pred, g_ref, (1, 1, 1)))
    out.append(("aniso_1x1x3_shift", np.roll(ref, 1, axis=0), ref, (1, 1, 3)))
    out.append(("aniso_3x1x1_shift", np.roll(ref, 1, axis=2), ref, (3, 1, 1)))
    out.append(("aniso_1p2x1x2_split", split, one, (1.2, 1, 2)))
    out.append(("half_mm_dilated", dilated, ref, (0.5, 0.5, 0.5)))
    for seed in range(6):
        p, r = random_case(seed)
        spacing = (1, 1, 1) if seed < 4 else ((1, 1.5, 2.5) if seed == 4 else (0.8, 0.8, 1))
        out.append((f"random_{seed}", p, r, spacing))
    return out


def save(path, arr, spacing):
    affine = np.diag([float(s) for s in spacing] + [1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), affine), path)


def encode(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf"
    return v


def main():
    from brats_evaluation import config_path
    from brats_evaluation.evaluation import evaluate_single_exam
    from panoptica import Panoptica_Evaluator
    from panoptica.utils.citation_reminder import disable_citation_reminder

    disable_citation_reminder()
    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    os.makedirs(os.path.join(HERE, "cases"), exist_ok=True)
    expected = {
        "generated_by": "make_reference.py",
        "packages": {p: version(p) for p in ["BraTS_evaluation", "panoptica", "numpy", "scipy", "SimpleITK"]},
        "cases": {},
    }
    for name, pred, ref, spacing in cases():
        pp = os.path.join(HERE, "cases", f"{name}_pred.nii.gz")
        rp = os.path.join(HERE, "cases", f"{name}_ref.nii.gz")
        save(pp, pred, spacing)
        save(rp, ref, spacing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = evaluate_single_exam(pp, rp, name, evaluator)
        if "error" in res:
            sys.exit(f"{name}: {res['error']}")
        expected["cases"][name] = {
            "spacing_xyz": [float(s) for s in spacing],
            "regions": {reg: {k: encode(res[reg][k]) for k in KEYS} for reg in ["wt", "tc", "et"]},
        }
        print(name, {reg: (res[reg]["tp"], res[reg]["fp"], res[reg]["fn"]) for reg in ["wt", "tc", "et"]})
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
