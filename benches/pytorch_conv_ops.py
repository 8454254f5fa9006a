"""Each convolution op of dsma's U-Net layers (batch 1, base width 16, 64³ input) in PyTorch, on the
same shapes as `cargo bench -p dsma-kernels --bench conv_ops` (core/kernels/benches/conv_ops.rs):
per layer the forward, the input gradient and the weight gradient, no bias, N(0, 1) tensors.

Each op is the bare kernel, as in the Rust bench, without an autograd graph:
  forward      F.conv3d / F.conv_transpose3d under torch.inference_mode();
  input grad   torch.ops.aten.convolution_backward(dy, x, w, None, ..., output_mask=(True, False, False));
  weight grad  torch.ops.aten.convolution_backward(..., output_mask=(False, True, False)).
convolution_backward is the op autograd runs in a conv's backward and the one that
torch.nn.grad.conv3d_input / conv3d_weight wrap; it is called directly here with the real x, w and dy
(nn.grad passes a stride-0 expanded placeholder for the tensor it does not need, and has no
transposed-conv variant), and only the requested gradient is computed (no bias gradient), as
dsma's conv3d_input_grad / conv3d_weight_grad and burn-flex's conv3d_x_backward /
conv3d_weight_backward compute only theirs.

Prints one line per op, `<layer row of README's conv_ops table>: <op>\t<median ms>` (op: forward,
input grad, weight grad), e.g. `conv 16→16 k3 64³: forward\t21.3`; the torch version and threads go
to stderr. `--reps` timed calls after `--warmup` untimed ones; the median is reported (criterion
reports a mean of 10 samples). `--filter` (substring of the layer name) narrows the set, like
DSMA_BENCH_FILTER.

Install torch in a virtual environment outside the repository (see benches/pytorch_unet3d.py), then
    ~/torch-venv/bin/python benches/pytorch_conv_ops.py --threads 2
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# (README row name, Rust bench group name, [in, out] channels, cube side, kernel, stride, padding, transposed).
# As in conv_ops.rs, `side` is the input side of a convolution and the *output* side of the
# transposed convolution (its input is side / 2).
LAYERS = [
    ("conv 16→16 k3 64³", "conv 16→16 k3 64³", (16, 16), 64, 3, 1, 1, False),
    ("conv 4→16 k3 64³", "conv 4→16 k3 64³", (4, 16), 64, 3, 1, 1, False),
    ("conv 32→16 k3 64³", "conv 32→16 k3 64³", (32, 16), 64, 3, 1, 1, False),
    ("down 16→32 k3 s2 64³", "down 16→32 k3 s2 64³", (16, 32), 64, 3, 2, 1, False),
    ("conv 64→64 k3 16³", "conv 64→64 k3 16³", (64, 64), 16, 3, 1, 1, False),
    ("up (transposed) 32→16 k2 s2, 16³ → 32³", "up 32→16 k2 s2 32³", (32, 16), 32, 2, 2, 0, True),
    ("head 16→3 k1 64³", "head 16→3 k1 64³", (16, 3), 64, 1, 1, 0, False),
]


def ops(layer, dev):
    """The layer's (op name, thunk) pairs, on tensors made once as in conv_ops.rs."""
    _, _, (ci, co), side, k, s, p, transposed = layer
    stride, padding, dilation = [s] * 3, [p] * 3, [1] * 3
    if transposed:
        x = torch.randn(1, ci, side // 2, side // 2, side // 2, device=dev)
        w = torch.randn(ci, co, k, k, k, device=dev)
        dy = torch.randn(1, co, side, side, side, device=dev)
        output_padding = [0] * 3

        def forward():
            return F.conv_transpose3d(x, w, None, stride, padding, output_padding, 1, dilation)

    else:
        out = (side + 2 * p - k) // s + 1
        x = torch.randn(1, ci, side, side, side, device=dev)
        w = torch.randn(co, ci, k, k, k, device=dev)
        dy = torch.randn(1, co, out, out, out, device=dev)
        output_padding = [0] * 3

        def forward():
            return F.conv3d(x, w, None, stride, padding, dilation, 1)

    def grad(mask):
        return torch.ops.aten.convolution_backward(
            dy, x, w, None, stride, padding, dilation, transposed, output_padding, 1, mask
        )

    return [
        ("forward", forward),
        ("input grad", lambda: grad([True, False, False])[0]),
        ("weight grad", lambda: grad([False, True, False])[1]),
    ]


def median_ms(fn, reps, warmup, sync):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions; the median is reported")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls before timing each op")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--filter", default="", help="substring of the layer name (README row or Rust group)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name(0) if a.device == "cuda" else f"{a.threads} threads"
    print(f"torch {torch.__version__}, {where}; {a.reps} reps, median ms", file=sys.stderr)
    with torch.inference_mode():
        for layer in LAYERS:
            row, rust_name = layer[0], layer[1]
            if a.filter not in row and a.filter not in rust_name:
                continue
            for op, fn in ops(layer, dev):
                print(f"{row}: {op}\t{median_ms(fn, a.reps, a.warmup, sync):.3f}", flush=True)


if __name__ == "__main__":
    main()
