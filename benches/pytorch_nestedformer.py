"""The `nestedformer` network of dsma (plugins/nestedformer: four modality encoders of a two-conv stem and
four stride-2 Global Poolformer stages, NMaFA fusion at the bottleneck, MSG-gated skips, transposed-conv
decoder) in PyTorch, layer for layer, timed the same way as `cargo bench -p dsma-nestedformer`: one AdamW
training step (lr 1e-4, weight decay 1e-5, eps 1e-8) with dsma's weighted soft Dice loss per cube side
(`--sizes`, batch 1; a CUDA step ends with torch.cuda.synchronize). The median of `--steps` timed steps
after `--warmup` untimed ones is printed.

NestedFormer's global token mixers (`Linear(1, D·H·W)`) fix the input size, so, as in dsma, `image_size`
is a network parameter: each cube side S gets its own network with image_size S³. The bottleneck window
is (4, 4, 4) (dsma's default) where it divides S/16, else the largest edge ≤ 4 that does (the phantom
experiments use (2, 2, 2) at 32³). `--count-only` builds the network at `--image-size` (default 128, dsma's
default `NestedFormerParams`), prints its parameter count per top-level module and in all, and exits with
status 1 if the total differs from dsma's (10,575,337 at the defaults; otherwise the hand count of
plugins/nestedformer/tests/nestedformer.rs, ported below).

Install torch in a virtual environment outside the repository, e.g.
    python3 -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
(or `pip install torch==2.9.0` from PyPI: the version dsma's libtorch backend, `--features tch`, links)
    ~/torch-venv/bin/python benches/pytorch_nestedformer.py --threads 2
    ~/torch-venv/bin/python benches/pytorch_nestedformer.py --count-only
"""

import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

DSMA_DEFAULT_PARAMETERS = 10_575_337  # dsma's NestedFormer at NestedFormerParams::default() (README.md)


def conv3d(i, o, k, stride=1, padding=0):
    # burn's Conv3dConfig: bias on, padding Valid unless set.
    return nn.Conv3d(i, o, k, stride=stride, padding=padding, bias=True)


class ConvNorm(nn.Module):
    """Conv3d -> InstanceNorm (no affine, eps 1e-5) -> ReLU."""

    def __init__(self, cin, cout, kernel=3, padding=1):
        super().__init__()
        self.conv = conv3d(cin, cout, kernel, padding=padding)
        self.norm = nn.InstanceNorm3d(cout, eps=1e-5, affine=False, track_running_stats=False)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class TwoConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = ConvNorm(cin, cout)
        self.b = ConvNorm(cout, cout)

    def forward(self, x):
        return self.b(self.a(x))


class LayerNormChannel(nn.Module):
    """Layer norm over the channel axis of [B, C, D, H, W] (PoolFormer's LayerNormChannel)."""

    def __init__(self, channels, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        d = x - u
        s = d.pow(2).mean(1, keepdim=True)
        n = d / torch.sqrt(s + self.eps)
        return n * self.weight.view(1, -1, 1, 1, 1) + self.bias.view(1, -1, 1, 1, 1)


class MlpChannel(nn.Module):
    """1x1x1 conv -> GELU (erf) -> 1x1x1 conv."""

    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = conv3d(c, hidden, 1)
        self.fc2 = conv3d(hidden, c, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class GlobalPool(nn.Module):
    """Spatial mean of each channel mapped by Linear(1, D·H·W) to one value per voxel."""

    def __init__(self, size):
        super().__init__()
        self.linear = nn.Linear(1, math.prod(size), bias=True)
        self.size = tuple(size)

    def forward(self, x):
        b, c, d, h, w = x.shape
        assert (d, h, w) == self.size, f"feature map {(d, h, w)} where the mixer was built for {self.size}"
        mean = x.reshape(b, c, d * h * w).mean(2, keepdim=True)
        return self.linear(mean).reshape(b, c, d, h, w)


class PoolBlock(nn.Module):
    def __init__(self, c, size):
        super().__init__()
        self.norm1 = LayerNormChannel(c, 1e-6)
        self.mixer = GlobalPool(size)
        self.norm2 = LayerNormChannel(c, 1e-6)
        self.mlp = MlpChannel(c, 2 * c)

    def forward(self, x):
        n = self.norm1(x)
        x = self.mixer(n) + n + x
        return x + self.mlp(self.norm2(x))


class PoolStage(nn.Module):
    """Patch-embedding conv (kernel = stride = 2) + channel norm (eps 1e-5) + two Poolformer blocks."""

    def __init__(self, cin, cout, size):
        super().__init__()
        self.embed = conv3d(cin, cout, 2, stride=2)
        self.norm = LayerNormChannel(cout, 1e-5)
        self.blocks = nn.ModuleList([PoolBlock(cout, size) for _ in range(2)])

    def forward(self, x):
        x = self.norm(self.embed(x))
        for b in self.blocks:
            x = b(x)
        return x


class Attention(nn.Module):
    """Multi-head attention with separate query/key/value/out projections (all with bias)."""

    def __init__(self, c, heads):
        super().__init__()
        self.query = nn.Linear(c, c)
        self.key = nn.Linear(c, c)
        self.value = nn.Linear(c, c)
        self.out = nn.Linear(c, c)
        self.heads = heads

    def forward(self, q, kv):
        b, n, c = q.shape
        m = kv.shape[1]
        hd = c // self.heads

        def split(t, length):
            return t.reshape(b, length, self.heads, hd).transpose(1, 2)

        qh = split(self.query(q), n)
        kh = split(self.key(kv), m)
        vh = split(self.value(kv), m)
        scores = qh @ kh.transpose(2, 3) / math.sqrt(hd)
        ctx = torch.softmax(scores, 3) @ vh
        return self.out(ctx.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def relative_indices(window):
    k = 2 * max(window) - 1
    shift = max(window) - 1
    pos = [(a, b, c) for a in range(window[0]) for b in range(window[1]) for c in range(window[2])]
    idx = [
        ((j[0] - i[0] + shift) * k + (j[1] - i[1] + shift)) * k + (j[2] - i[2] + shift) for i in pos for j in pos
    ]
    return idx, k


class WindowAttention(nn.Module):
    """Self-attention in non-overlapping 3-D windows with a (2w-1)^3 relative-position bias shared by heads."""

    def __init__(self, c, heads, window):
        super().__init__()
        idx, k = relative_indices(window)
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.out = nn.Linear(c, c)
        self.table = nn.Parameter(torch.randn(k, k, k))
        self.register_buffer("idx", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.heads = heads
        self.window = tuple(window)

    def forward(self, x):  # [B, D, H, W, C]
        b, d, h, w, c = x.shape
        wd, wh, ww = self.window
        nd, nh, nw = d // wd, h // wh, w // ww
        n, hd = wd * wh * ww, c // self.heads
        windows = nd * nh * nw
        t = (
            self.qkv(x)
            .reshape(b * nd, wd, nh, wh, nw, ww, 3 * c)
            .permute(0, 2, 4, 1, 3, 5, 6)
            .reshape(b * windows, n, 3 * c)
        )

        def split(i):
            return t.narrow(2, i * c, c).reshape(b * windows, n, self.heads, hd).transpose(1, 2)

        q, k, v = split(0), split(1), split(2)
        bias = self.table.reshape(-1).index_select(0, self.idx).reshape(1, 1, n, n)
        scores = q @ k.transpose(2, 3) / math.sqrt(hd) + bias
        ctx = (torch.softmax(scores, 3) @ v).transpose(1, 2).reshape(b * windows, n, c)
        o = self.out(ctx)
        return o.reshape(b * nd, nh, nw, wd, wh, ww, c).permute(0, 3, 1, 4, 2, 5, 6).reshape(b, d, h, w, c)


class SpatialBlock(nn.Module):
    """Tri-orientated spatial attention (slices, along D, 3-D windows), summed; pre-norm residual + MLP."""

    def __init__(self, c, heads, mlp, size, window, position):
        super().__init__()
        self.norm1 = nn.LayerNorm(c, eps=1e-6)
        self.slice_att = Attention(c, heads)
        self.depth_att = Attention(c, heads)
        self.window_att = WindowAttention(c, heads, window)
        self.pos_slice = nn.Parameter(torch.zeros(1, size[1] * size[2], c)) if position else None
        self.pos_depth = nn.Parameter(torch.zeros(1, size[0], c)) if position else None
        self.norm2 = nn.LayerNorm(c, eps=1e-6)
        self.mlp = Mlp(c, mlp)

    def forward(self, x):
        b, c, d, h, w = x.shape
        tokens = x.permute(0, 2, 3, 4, 1)  # [B, D, H, W, C]
        n = self.norm1(tokens)
        s = n.reshape(b * d, h * w, c)
        if self.pos_slice is not None:
            s = s + self.pos_slice
        s = self.slice_att(s, s).reshape(b, d, h, w, c)
        z = n.permute(0, 2, 3, 1, 4).reshape(b * h * w, d, c)
        if self.pos_depth is not None:
            z = z + self.pos_depth
        z = self.depth_att(z, z).reshape(b, h, w, d, c).permute(0, 3, 1, 2, 4)
        win = self.window_att(n)
        x = tokens + s + z + win
        y = self.mlp(self.norm2(x))
        return (x + y).permute(0, 4, 1, 2, 3)


class TokenLearner(nn.Module):
    """3x3x3 conv -> sigmoid maps weighting the voxels, averaged over space: [B, C, D, H, W] -> [B, T, C]."""

    def __init__(self, c, tokens):
        super().__init__()
        self.conv = conv3d(c, tokens, 3, padding=1)

    def forward(self, x):
        b, c, d, h, w = x.shape
        n = d * h * w
        sel = torch.sigmoid(self.conv(x))
        sel = sel.reshape(b, sel.shape[1], n)
        feats = x.reshape(b, c, n).transpose(1, 2)
        return sel @ feats / n


class ModalityEncoder(nn.Module):
    def __init__(self, widths, image_size):
        super().__init__()
        x, y, z = image_size
        self.stem = TwoConv(1, widths[0])
        self.stages = nn.ModuleList(
            [PoolStage(widths[l - 1], widths[l], (z >> l, y >> l, x >> l)) for l in range(1, 5)]
        )

    def forward(self, x):
        out = [self.stem(x)]
        for s in self.stages:
            out.append(s(out[-1]))
        return out


class CrossModality(nn.Module):
    def __init__(self, c, m, n, heads, tokens):
        super().__init__()
        self.embed = nn.ModuleList([conv3d(c, c, 1) for _ in range(m)])
        self.pos = nn.ParameterList([nn.Parameter(torch.zeros(1, n, c)) for _ in range(m)])
        self.learner = TokenLearner(c, tokens)
        self.attention = Attention(c, heads)
        self.norm_cross = nn.LayerNorm(c, eps=1e-6)
        self.mlp = Mlp(c, 2 * c)
        self.norm_ffn = nn.LayerNorm(c, eps=1e-6)


class Nmafa(nn.Module):
    def __init__(self, p):
        super().__init__()
        c, m = p["widths"][4], p["modalities"]
        size = tuple(s // 16 for s in p["image_size"])  # (x, y, z)
        n = math.prod(size)
        self.reduce = conv3d(m * c, c, 1)
        self.spatial = nn.ModuleList(
            [SpatialBlock(c, p["heads"], 2 * c, size, p["window"], i == 0) for i in range(p["spatial_layers"])]
        )
        self.cross = CrossModality(c, m, n, p["heads"], p["modality_tokens"])

    def forward(self, per_modality):
        xyz = [t.transpose(2, 4) for t in per_modality]  # [B, C, z, y, x] -> [B, C, x, y, z]
        q = self.reduce(torch.cat(xyz, 1))
        for blk in self.spatial:
            q = blk(q)
        b, c, d, h, w = q.shape
        n = d * h * w
        q_tokens = q.reshape(b, c, n).transpose(1, 2)
        cm = self.cross
        kv = []
        for t, conv, pos in zip(xyz, cm.embed, cm.pos):
            e = conv(t).reshape(b, c, n).transpose(1, 2) + pos
            kv.append(cm.learner(e.transpose(1, 2).reshape(b, c, d, h, w)))
        kv = torch.cat(kv, 1)
        x = cm.norm_cross(cm.attention(q_tokens, kv) + q_tokens)
        x = cm.norm_ffn(cm.mlp(x) + x)
        return x.transpose(1, 2).reshape(b, c, d, h, w).transpose(2, 4)


class UpLevel(nn.Module):
    def __init__(self, cin, skip_c, out, m, msg):
        super().__init__()
        up_c = cin // 2
        self.up = nn.ConvTranspose3d(cin, up_c, 2, stride=2, bias=True)
        self.skip_fusion = TwoConv(m * skip_c, skip_c)
        self.gate = conv3d(up_c, m, 1) if msg else None
        self.convs = TwoConv(skip_c + up_c, out)


class NestedFormer(nn.Module):
    def __init__(self, p):
        super().__init__()
        f, m = p["widths"], p["modalities"]
        self.encoders = nn.ModuleList([ModalityEncoder(f, p["image_size"]) for _ in range(m)])
        self.nmafa = Nmafa(p)
        self.bottleneck_fusion = TwoConv(m * f[4], f[4])
        self.levels = nn.ModuleList(
            [UpLevel(f[l + 1], f[l], f[5] if l == 0 else f[l], m, p["msg"]) for l in range(4)]
        )
        self.head = conv3d(f[5], p["out_channels"], 1)

    def forward(self, x):
        feats = [e(x.narrow(1, i, 1)) for i, e in enumerate(self.encoders)]

        def level(l):
            return [fs[l] for fs in feats]

        bottom = level(4)
        u = self.nmafa(bottom) + self.bottleneck_fusion(torch.cat(bottom, 1))
        for l in reversed(range(4)):
            lv = self.levels[l]
            up = lv.up(u)
            skips = level(l)
            if lv.gate is not None:
                gates = torch.sigmoid(lv.gate(up))
                skips = [s * gates.narrow(1, i, 1) for i, s in enumerate(skips)]
            skip = lv.skip_fusion(torch.cat(skips, 1))
            u = lv.convs(torch.cat([skip, up], 1))
        return self.head(u)


def default_params(image_size=(128, 128, 128)):
    """dsma's NestedFormerParams::default() (plugins/nestedformer/src/lib.rs), image_size replaced."""
    return dict(
        modalities=4,
        out_channels=3,
        image_size=tuple(image_size),
        widths=(16, 16, 32, 64, 128, 16),
        window=(4, 4, 4),
        heads=8,
        spatial_layers=2,
        modality_tokens=32,
        msg=True,
    )


def params_for_side(side):
    """image_size S³; window (4, 4, 4) where it divides S/16 (dsma rejects it otherwise), else the largest
    edge <= 4 that does."""
    if side % 16:
        raise SystemExit(f"cube side {side}: NestedFormer's image_size must be a multiple of 16")
    p = default_params((side, side, side))
    b = side // 16
    p["window"] = tuple(max(w for w in range(1, min(e, b) + 1) if b % w == 0) for e in p["window"])
    return p


def hand_count(p):
    """Port of `hand_count` in plugins/nestedformer/tests/nestedformer.rs (dsma's trainable parameters)."""
    f, m = p["widths"], p["modalities"]

    def conv(i, o, k):
        return k**3 * i * o + o

    def two(i, o):
        return conv(i, o, 3) + conv(o, o, 3)

    def lin(i, o):
        return i * o + o

    x, y, z = p["image_size"]
    enc = two(1, f[0])
    for l in range(1, 5):
        cin, c = f[l - 1], f[l]
        n = (x >> l) * (y >> l) * (z >> l)
        enc += conv(cin, c, 2) + 2 * c
        enc += 2 * (2 * c + lin(1, n) + 2 * c + conv(c, 2 * c, 1) + conv(2 * c, c, 1))
    c = f[4]
    a, b, cz = x // 16, y // 16, z // 16
    k = 2 * max(p["window"]) - 1
    nmafa = conv(m * c, c, 1)
    for i in range(p["spatial_layers"]):
        nmafa += 4 * c + 8 * lin(c, c) + 3 * c * c + lin(c, c) + k**3 + lin(c, 2 * c) + lin(2 * c, c)
        if i == 0:
            nmafa += b * cz * c + a * c
    nmafa += (
        m * conv(c, c, 1) + m * a * b * cz * c + conv(c, p["modality_tokens"], 3)
        + 4 * lin(c, c) + 2 * c + lin(c, 2 * c) + lin(2 * c, c) + 2 * c
    )
    fusion = two(m * c, c)
    levels = 0
    for l in range(4):
        cin = f[l + 1]
        up = cin // 2
        out = f[5] if l == 0 else f[l]
        levels += 8 * cin * up + up + two(m * f[l], f[l]) + two(f[l] + up, out)
        if p["msg"]:
            levels += conv(up, m, 1)
    head = conv(f[5], p["out_channels"], 1)
    return {"encoders": m * enc, "nmafa": nmafa, "bottleneck_fusion": fusion, "levels": levels, "head": head}


def count(module):
    return sum(q.numel() for q in module.parameters())


def weighted_dice_loss(logits, target, weight, smooth_nr=1e-5, smooth_dr=1e-5):
    """dsma_train::loss::weighted_dice_loss: (1/N) sum_n w_n (1 - mean_c (2 sum P·G + 1e-5) / (sum P + sum G + 1e-5)),
    P = sigmoid(logits)."""
    n, c = logits.shape[:2]
    p = torch.sigmoid(logits).flatten(2)
    g = target.flatten(2)
    intersection = (p * g).sum(2)
    denominator = p.sum(2) + g.sum(2)
    dice = (intersection * 2.0 + smooth_nr) / (denominator + smooth_dr)
    per_sample = (1.0 - dice).mean(1)
    return (per_sample * weight).mean()


def timed(fn, steps, warmup, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def count_only(side):
    p = default_params((side, side, side))
    net = NestedFormer(p)
    hand = hand_count(p)
    for name in hand:
        print(f"  {name}: {count(getattr(net, name))} (dsma: {hand[name]})")
    total = count(net)
    expected = sum(hand.values())
    if p == default_params():
        assert expected == DSMA_DEFAULT_PARAMETERS
    print(f"image_size {side}^3, default params; parameters: {total} (dsma: {expected})")
    if total != expected:
        print(f"MISMATCH: PyTorch {total} != dsma {expected}")
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per size (the median is printed)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed training steps before them")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", default="64", help="comma-separated cube sides (multiples of 16) of the training step")
    ap.add_argument("--count-only", action="store_true", help="print the parameter count and exit (1 if it differs from dsma's)")
    ap.add_argument("--image-size", type=int, default=128, help="cube side for --count-only (dsma's default: 128)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.count_only:
        count_only(a.image_size)
        return
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name(0) if a.device == "cuda" else f"{a.threads} threads"
    for side in (int(s) for s in a.sizes.split(",")):
        p = params_for_side(side)
        net = NestedFormer(p).to(dev)
        print(
            f"torch {torch.__version__}, {where}; image_size {side}^3, window {p['window']}; "
            f"parameters: {count(net)}"
        )
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=1e-5, eps=1e-8)
        x = torch.randn(1, 4, side, side, side, device=dev)
        t = torch.bernoulli(torch.full((1, 3, side, side, side), 0.2, device=dev))
        w = torch.ones(1, device=dev)

        def step():
            opt.zero_grad()
            out = net(x)
            assert out.shape == t.shape, f"output {tuple(out.shape)} != target {tuple(t.shape)}"
            loss = weighted_dice_loss(out, t, w)
            loss.backward()
            opt.step()

        print(f"train step {side}^3: {timed(step, a.steps, a.warmup, sync):.4f} s")


if __name__ == "__main__":
    main()
