#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), built here from scratch:
small NIfTI-1 and NIfTI-2 images in both byte orders and several datatypes (plain and gzipped),
the repository's experiment files, and a few override lines."""
import gzip
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# (code, struct format of one voxel, bits)
TYPES = [(2, "B", 8), (4, "h", 16), (8, "i", 32), (16, "f", 32), (64, "d", 64), (512, "H", 16)]


def nifti1(order, dims, code, fmt, bits, slope=1.0):
    h = bytearray(348)
    struct.pack_into(order + "i", h, 0, 348)
    struct.pack_into(order + "8h", h, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into(order + "hh", h, 70, code, bits)
    struct.pack_into(order + "8f", h, 76, 1.0, 1.0, 1.0, 2.5, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(order + "f", h, 108, 352.0)
    struct.pack_into(order + "ff", h, 112, slope, 0.0)
    struct.pack_into(order + "hh", h, 252, 1, 1)
    struct.pack_into(order + "4f", h, 280, 1.0, 0.0, 0.0, 0.0)
    struct.pack_into(order + "4f", h, 296, 0.0, 1.0, 0.0, 0.0)
    struct.pack_into(order + "4f", h, 312, 0.0, 0.0, 2.5, 0.0)
    h[344:348] = b"n+1\0"
    n = 1
    for d in dims:
        n *= d
    data = struct.pack(order + fmt * n, *[(i % 5) for i in range(n)])
    return bytes(h) + b"\0\0\0\0" + data


def nifti2(order, dims, code, fmt, bits):
    h = bytearray(540)
    struct.pack_into(order + "i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into(order + "hh", h, 12, code, bits)
    struct.pack_into(order + "8q", h, 16, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into(order + "8d", h, 104, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into(order + "q", h, 168, 544)
    struct.pack_into(order + "dd", h, 176, 0.0, 0.0)
    n = 1
    for d in dims:
        n *= d
    data = struct.pack(order + fmt * n, *[(i % 7) for i in range(n)])
    return bytes(h) + b"\0\0\0\0" + data


def main():
    images = {}
    for order, name in (("<", "le"), (">", "be")):
        for code, fmt, bits in TYPES:
            images[f"v1-{name}-{code}.nii"] = nifti1(order, [3, 2, 2], code, fmt, bits)
            images[f"v2-{name}-{code}.nii"] = nifti2(order, [2, 2, 3], code, fmt, bits)
        images[f"v1-{name}-4d.nii"] = nifti1(order, [2, 2, 2, 3], 16, "f", 32)
        images[f"v1-{name}-scaled.nii"] = nifti1(order, [2, 2, 2], 4, "h", 16, slope=0.5)
    for target in ("nifti_reader", "nifti_gzip"):
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
        for name, data in images.items():
            (CORPUS / target / name).write_bytes(data)
    for name, data in images.items():
        (CORPUS / "nifti_reader" / (name + ".gz")).write_bytes(gzip.compress(data))
    yaml_dir = CORPUS / "experiment_yaml"
    yaml_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted((HERE.parent / "experiments").glob("*.yaml")):
        (yaml_dir / f.name).write_bytes(f.read_bytes())
    ov = CORPUS / "overrides"
    ov.mkdir(parents=True, exist_ok=True)
    lines = [
        "train.stage1.epochs=3",
        "rows.1.weighter.params.beta=0.1\ntrain.batch=2",
        "eval.window.overlap=0.5",
        "model.params={base_width: 4, depth: 2}",
        "rows.0.synthesizer={name: dtss}",
        "datasets.0.phantom.size=[16, 16, 16]",
    ]
    for i, text in enumerate(lines):
        (ov / f"seed-{i}").write_text(text)
    (CORPUS / "plugin_abi").mkdir(parents=True, exist_ok=True)
    (CORPUS / "plugin_abi" / "seed-0").write_bytes(bytes(range(64)))


if __name__ == "__main__":
    main()
