"""The `unet3d` network of dsma (base 16, depth 4, instance norm, LeakyReLU 0.01, strided-conv down,
transposed-conv or 1x1x1-conv + trilinear up) in PyTorch, timed the same way as
`cargo bench -p dsma-unet3d`: one AdamW training step with the soft Dice loss per cube side
(`--sizes`, batch 1; a CUDA step ends with torch.cuda.synchronize), one 128³ forward pass, and the
128³ sliding window (96³ windows, overlap 0.5, Gaussian blending) through MONAI when it is installed.
`--device cuda` runs on the GPU with cudnn.benchmark on (as nnU-Net does); `--no-forward` skips the
128³ inference timings.

Install torch in a virtual environment outside the repository, e.g.
    python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
(or `pip install torch==2.9.0` from PyPI: the version dsma's libtorch backend, `--features tch`, links)
    ~/torch-venv/bin/python benches/pytorch_unet3d.py --threads 2
"""

import argparse
import time

import torch
from torch import nn


def block(i, o, stride=1):
    return nn.Sequential(
        nn.Conv3d(i, o, 3, stride=stride, padding=1),
        nn.InstanceNorm3d(o, affine=True),
        nn.LeakyReLU(0.01),
    )


def up(i, o, mode):
    if mode == "transpose":
        return nn.ConvTranspose3d(i, o, 2, stride=2)
    return nn.Sequential(nn.Conv3d(i, o, 1), nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False))


class UNet3d(nn.Module):
    def __init__(self, base=16, depth=4, cin=4, cout=3, upsample="transpose"):
        super().__init__()
        w = [base << level for level in range(depth + 1)]
        self.enc = nn.ModuleList(
            [nn.Sequential(block(cin if l == 0 else w[l], w[l]), block(w[l], w[l])) for l in range(depth)]
        )
        self.down = nn.ModuleList([block(w[l], w[l + 1], stride=2) for l in range(depth)])
        self.bottleneck = nn.Sequential(block(w[depth], w[depth]), block(w[depth], w[depth]))
        self.up = nn.ModuleList([up(w[l + 1], w[l], upsample) for l in range(depth)])
        self.dec = nn.ModuleList(
            [nn.Sequential(block(2 * w[l], w[l]), block(w[l], w[l])) for l in range(depth)]
        )
        self.head = nn.Conv3d(w[0], cout, 1)

    def forward(self, x):
        skips = []
        for enc, down in zip(self.enc, self.down):
            s = enc(x)
            skips.append(s)
            x = down(s)
        x = self.bottleneck(x)
        for level in reversed(range(len(self.dec))):
            x = self.dec[level](torch.cat([self.up[level](x), skips.pop()], 1))
        return self.head(x)


def dice_loss(logits, target, eps=1e-5):
    p = torch.sigmoid(logits).flatten(2)
    g = target.flatten(2)
    dice = (2 * (p * g).sum(2) + eps) / (p.sum(2) + g.sum(2) + eps)
    return (1 - dice).mean()


def timed(fn, repeats, sync=lambda: None):
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", default="32,64", help="comma-separated cube sides of the training step")
    ap.add_argument("--upsample", default="transpose", choices=["transpose", "trilinear"])
    ap.add_argument("--no-forward", action="store_true", help="skip the 128^3 inference timings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
    net = UNet3d(upsample=a.upsample).to(dev)
    where = torch.cuda.get_device_name(0) if a.device == "cuda" else f"{a.threads} threads"
    print(f"torch {torch.__version__}, {where}; upsample {a.upsample}; parameters: {sum(p.numel() for p in net.parameters())}")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-5, eps=1e-8)
    for side in (int(s) for s in a.sizes.split(",")):
        x = torch.randn(1, 4, side, side, side, device=dev)
        t = (torch.rand(1, 3, side, side, side, device=dev) < 0.2).float()

        def step():
            opt.zero_grad()
            loss = dice_loss(net(x), t)
            loss.backward()
            opt.step()

        print(f"train step {side}^3: {timed(step, a.repeats, sync):.4f} s")
    if a.no_forward:
        return
    net.eval()
    x = torch.randn(1, 4, 128, 128, 128, device=dev)
    with torch.no_grad():
        print(f"forward 128^3: {timed(lambda: net(x), a.repeats, sync):.4f} s")
        try:
            from monai.inferers import sliding_window_inference

            def sw():
                sliding_window_inference(x, (96, 96, 96), 1, lambda v: torch.sigmoid(net(v)), overlap=0.5, mode="gaussian")

            print(f"sliding window 128^3 (96^3, overlap 0.5, MONAI): {timed(sw, a.repeats, sync):.4f} s")
        except ImportError:
            print("sliding window: MONAI not installed (pip install monai)")


if __name__ == "__main__":
    main()
