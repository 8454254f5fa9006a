"""DTSS and MAS from Python: the CLI's output byte for byte, and MAS against the paper's equations."""

import subprocess

import numpy as np
import pytest

import dsma


def synth_cli(dsma_bin, case_dir, out, seed, *sets):
    args = [dsma_bin, "synth", "--case", str(case_dir), "--out", str(out), "--seed", str(seed), "--n", "1"]
    for s in sets:
        args += ["--set", s]
    subprocess.run(args, check=True, capture_output=True)
    (written,) = [p for p in out.iterdir() if p.is_dir()]
    return dsma.load_case(written)


@pytest.mark.parametrize("seed,sets,params", [
    (7, [], {}),
    (123, ["monomer_radius=[2,3]", "iterations=[3,4]"], {"monomer_radius": [2, 3], "iterations": [3, 4]}),
])
def test_dtss_is_byte_identical_to_dsma_synth(dsma_bin, case_dir, tmp_path, seed, sets, params):
    expected = synth_cli(dsma_bin, case_dir, tmp_path, seed, *sets)
    real = dsma.load_case(case_dir)
    image, label = dsma.dtss(real["image"], real["label"], seed=seed, **params)
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert image.tobytes() == expected["image"].tobytes()
    assert label.tobytes() == expected["label"].tobytes()
    # It did synthesize something: the tumour changed.
    assert not np.array_equal(label, real["label"])


def test_dtss_depends_on_the_seed_only(case):
    a = dsma.dtss(case["image"], case["label"], seed=1)
    b = dsma.dtss(case["image"], case["label"], seed=1)
    c = dsma.dtss(case["image"], case["label"], seed=2)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert a[1].tobytes() != c[1].tobytes()


def test_strided_input_is_read_as_its_values(case):
    # A reversed, non-contiguous view gives what its contiguous copy gives (nothing is assumed of
    # the strides).
    image = case["image"][:, ::-1]
    label = case["label"][::-1]
    assert not image.flags["C_CONTIGUOUS"]
    a = dsma.dtss(image, label, seed=3)
    b = dsma.dtss(np.ascontiguousarray(image), np.ascontiguousarray(label), seed=3)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()


def mas_by_hand(real, synthetic, beta=0.1, c=0.00002):
    """Eqs. 6-13: η = mean real score, θ = half the real range + c, weight 1 on [η-θ, η+θ],
    0 beyond η±(θ+β), the parabola a(L-q1)(L-q2) with a = -1/(β(2θ+β)) between."""
    eta = sum(real) / len(real)
    theta = (max(real) - min(real)) / 2 + c
    q1, q2 = eta - theta - beta, eta + theta + beta
    a = -1 / (beta * (2 * theta + beta))
    out = []
    for l in synthetic:
        if eta - theta <= l <= eta + theta:
            out.append(1.0)
        elif l <= q1 or l >= q2:
            out.append(0.0)
        else:
            out.append(min(1.0, max(0.0, a * (l - q1) * (l - q2))))
    return out


def test_mas_weights_follow_the_equations():
    real = [0.8, 0.9, 0.85]
    synthetic = [0.1, 0.5, 0.85, 0.95, 0.7, 0.9]
    w = dsma.mas_weights(real, synthetic)
    assert w.dtype == np.float64 and w.shape == (6,)
    np.testing.assert_allclose(w, mas_by_hand(real, synthetic), rtol=0, atol=1e-12)
    # 0.95 by hand: (0.95 - 0.69998)(0.95 - 1.00002) / -(0.1 · 0.20004) = 0.6251749650...
    assert abs(w[3] - 0.25002 * 0.05002 / 0.020004) < 1e-12
    w2 = dsma.mas_weights(real, synthetic, beta=0.3)
    np.testing.assert_allclose(w2, mas_by_hand(real, synthetic, beta=0.3), rtol=0, atol=1e-12)


def test_mas_refuses_what_it_cannot_weigh():
    with pytest.raises(dsma.DsmaError, match="no real-case scores"):
        dsma.mas_weights([], [0.5])
    with pytest.raises(dsma.DsmaError, match="not a finite number"):
        dsma.mas_weights([0.5, float("nan")], [0.5])
    with pytest.raises(ValueError, match="beta"):
        dsma.mas_weights([0.5], [0.5], beta="wide")
    with pytest.raises(TypeError, match="`real_scores` must have dtype float64"):
        dsma.weights("mas", np.array([1, 2], dtype=np.int64), np.array([0.5]))
