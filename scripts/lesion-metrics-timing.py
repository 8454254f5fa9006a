#!/usr/bin/env python3
"""Times lesion-wise BraTS metrics of one 240×240×155 case: the official package
(`BraTS_evaluation` 0.0.10, glioma config) against `dsma eval --metrics dice,hd95,nsd,lesion
--reading panoptica`, both from the same two NIfTI files (reading included in both), and the package on the arrays in
memory (compare with `cargo bench -p dsma-data --bench metrics -- all_metrics`, which times dsma
in memory on the same case built in Rust).

The case: 12 tumours (oedema 2 with an enhancing rim 3 around a necrotic core 1, BraTS 2023
labels) of radius 8–15 voxels; the prediction shifts four of them by 2 voxels, erodes three, drops
one and adds three spurious enhancing blobs. The package evaluates its six label groups (snfh, et,
netc, rc, tc, wt); it is also timed with a copy of its config reduced to dsma's three (wt, tc, et).

    python3 -m venv /tmp/brats-venv
    /tmp/brats-venv/bin/pip install BraTS_evaluation==0.0.10 panoptica==2.1.7 numpy==2.2.6 scipy==1.17.1
    /tmp/brats-venv/bin/python scripts/lesion-metrics-timing.py target/release/dsma
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import nibabel as nib
import numpy as np


def tumour(a, c, r):
    zz, yy, xx = np.ogrid[: a.shape[0], : a.shape[1], : a.shape[2]]
    d = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    a[d <= r] = 2
    a[d <= 0.65 * r] = 3
    a[d <= 0.3 * r] = 1


def make_case():
    shape = (155, 240, 240)  # (z, y, x)
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    centres = [(40 + 35 * (i % 3), 40 + 55 * ((i // 3) % 4), 50 + 70 * (i % 2) + 10 * (i // 6)) for i in range(12)]
    for i, c in enumerate(centres):
        r = 8 + (i * 7) % 8
        tumour(ref, c, r)
        if i == 11:
            continue  # missed
        shifted = (c[0], c[1] + 2, c[2]) if i % 3 == 0 else c
        tumour(pred, shifted, r - 2 if i % 4 == 1 else r)
    for c in [(20, 200, 30), (130, 20, 200), (75, 120, 215)]:
        pred[c[0] - 2 : c[0] + 3, c[1] - 2 : c[1] + 3, c[2] - 2 : c[2] + 3] = 3
    return pred, ref


def save(path, arr):
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr.transpose(2, 1, 0)), np.eye(4)), path)


def three_group_config(folder):
    from brats_evaluation import config_path

    text = open(config_path("gli")).read()
    out, skip = [], False
    for line in text.splitlines():
        if line.startswith("    ") and line.strip().rstrip(":") in ("snfh: !LabelGroup", "netc: !LabelGroup", "rc: !LabelGroup"):
            skip = True
            continue
        if skip and line.startswith("      "):
            continue
        skip = False
        out.append(line)
    path = os.path.join(folder, "config_wt_tc_et.yaml")
    open(path, "w").write("\n".join(out) + "\n")
    return path


def time_it(f, runs=3):
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        walls.append(time.perf_counter() - t)
    return statistics.median(walls), walls


def main():
    dsma = sys.argv[1] if len(sys.argv) > 1 else "target/release/dsma"
    from brats_evaluation import config_path
    from brats_evaluation.evaluation import evaluate_single_exam
    from panoptica import Panoptica_Evaluator
    from panoptica.utils.citation_reminder import disable_citation_reminder

    disable_citation_reminder()
    folder = tempfile.mkdtemp()
    pred, ref = make_case()
    pp, rp = os.path.join(folder, "pred.nii.gz"), os.path.join(folder, "ref.nii.gz")
    save(pp, pred)
    save(rp, ref)
    from scipy import ndimage

    for name, labels in [("wt", [1, 2, 3]), ("tc", [1, 3]), ("et", [3])]:
        n_ref = ndimage.label(np.isin(ref, labels), structure=np.ones((3, 3, 3)))[1]
        n_pred = ndimage.label(np.isin(pred, labels), structure=np.ones((3, 3, 3)))[1]
        print(f"{name}: {n_ref} true lesions, {n_pred} predicted")
    rows = []
    for label, cfg in [("package, 6 groups", str(config_path("gli"))), ("package, wt/tc/et", three_group_config(folder))]:
        ev = Panoptica_Evaluator.load_from_config(cfg)

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = evaluate_single_exam(pp, rp, "case", ev)
            assert "error" not in r, r

        rows.append((label, *time_it(run)))

        def in_memory():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ev.evaluate(pred, ref)

        rows.append((label + ", in memory", *time_it(in_memory)))
    cmd = [dsma, "eval", "--pred", pp, "--label", rp, "--labels", "brats2023", "--metrics", "dice,hd95,nsd,lesion", "--reading", "panoptica", "--json"]
    for threads in ["1", str(os.cpu_count())]:
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        rows.append((f"dsma eval, {threads} thread(s)", *time_it(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True))))
    for label, median, walls in rows:
        print(f"{label:28} median {median:7.3f} s   runs {', '.join(f'{w:.3f}' for w in walls)}")


if __name__ == "__main__":
    main()
