"""The PyTorch side of the benchmarks: the same workloads as benches/*.rs, in PyTorch eager on
the CPU, timed the same way. Prints one JSON object:
{"threads": N, "torch": "...", "results": {"<bench id>": <median ms>, ...}}

    python3 benches/peers/torch_peer.py --threads 2 [--only softmax] [--reps K]
    python3 benches/peers/torch_peer.py --device cuda [--matmul 4096] [--scale 1]

Tensors are float32 from torch.manual_seed(0) and torch.randn; forward-only benches run under
torch.no_grad(); fwd+bwd benches set the inputs' .grad to None before every repetition.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F


def chain(x, w, b):
    """The layer-sized element-wise chain of benches/elementwise.rs and benches/device.rs."""
    return F.gelu(x * w + b, approximate="tanh") + x


def row_cases(s, gs, x, w, bias, g):
    """Softmax over rows of `s` and the chain on `x`, forward alone (no grad) and forward +
    backward: {name: (fn, no_grad)}, shared by the CPU and GPU benches."""
    sg = s.clone().requires_grad_()
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, bias))

    def softmax_fwd_bwd():
        sg.grad = None
        torch.softmax(sg, -1).backward(gs)

    def chain_fwd_bwd():
        xg.grad = wg.grad = bg.grad = None
        chain(xg, wg, bg).backward(g)

    def layer_norm_fwd_bwd():
        xg.grad = wg.grad = bg.grad = None
        F.layer_norm(xg, (x.shape[-1],), wg, bg, 1e-5).backward(g)

    return {
        "softmax_fwd": (lambda: torch.softmax(s, -1), True),
        "softmax_fwd_bwd": (softmax_fwd_bwd, False),
        "gelu_chain": (lambda: chain(x, w, bias), True),
        "gelu_chain_fwd_bwd": (chain_fwd_bwd, False),
        "layer_norm_fwd_bwd": (layer_norm_fwd_bwd, False),
    }


class Lazy:
    """Builds a workload on its first call, so that --only skips building the others."""

    def __init__(self, make):
        self.make, self.fn = make, None

    def __call__(self):
        if self.fn is None:
            self.fn = self.make()
        return self.fn()


def workloads():
    torch.manual_seed(0)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    s, gs = torch.randn(16384, 256), torch.randn(16384, 256)
    x, y = torch.randn(4096, 512), torch.randn(4096, 512)
    w, bias = torch.randn(512), torch.randn(512)
    g = torch.randn(4096, 512)
    rows = row_cases(s, gs, x, w, bias, g)

    pool = {n: context_pool_case(n) for n in (256, 1024, 4096)}
    mha = mha_case()
    conv = conv_case()

    steps = {
        "plain_4l": lambda: train_step_case(4),
        "plain_2l": lambda: train_step_case(2),
        "contextpool_2l": lambda: train_step_case(2, pooled=True),
        "local_4l": lambda: train_step_case(4, window=32),
    }

    sdpa = {f"causal_fwd_bwd_b16_h4_d32_n{n}": (lambda n=n: sdpa_case(n)) for n in (256, 1024, 4096)}
    sdpa["local_w128_fwd_bwd_b16_h4_d32_n4096"] = lambda: sdpa_case(4096, window=128)

    return {
        **{f"train_step_f32/{name}": (Lazy(make), False) for name, make in steps.items()},
        **{f"sdpa_f32/{name}": (Lazy(make), False) for name, make in sdpa.items()},
        **{f"context_pool_f32/fwd_bwd_n{n}": (fn, False) for n, fn in pool.items()},
        **{f"context_pool_f32/fwd_bwd_causal_n{n}": (Lazy(lambda n=n: context_pool_unfold_case(n)), False)
           for n in (256, 1024, 4096)},
        "attention_f32/mha_causal_fwd_bwd_b16_n256_d128_h4": (mha, False),
        "conv_f32/conv2d_fwd_bwd_b32_c32_o64_28x28_k3": (conv, False),
        "matmul_f32/1024": (lambda: a @ b, True),
        "softmax_f32/fwd_16384x256": rows["softmax_fwd"],
        "softmax_f32/fwd_bwd_16384x256": rows["softmax_fwd_bwd"],
        "elementwise_f32/add_4096x512": (lambda: x + y, True),
        "elementwise_f32/gelu_chain_4096x512": rows["gelu_chain"],
        "elementwise_f32/gelu_chain_fwd_bwd_4096x512": rows["gelu_chain_fwd_bwd"],
    }


def device_workloads(device, n=4096, scale=1):
    """The GPU benches of benches/device.rs (ids device_f32/...), on a torch device."""
    torch.manual_seed(0)
    r = lambda *shape: torch.randn(*shape, device=device)
    a, b = r(n, n), r(n, n)
    rows = 16384 // scale
    s, gs = r(rows, 256), r(rows, 256)
    rows, d = 4096 // scale, 512
    cases = row_cases(s, gs, r(rows, d), r(d), r(d), r(rows, d))
    return {
        f"device_f32/matmul_{n}": (lambda: a @ b, True),
        "device_f32/softmax_fwd_16384x256": cases["softmax_fwd"],
        "device_f32/softmax_fwd_bwd_16384x256": cases["softmax_fwd_bwd"],
        "device_f32/gelu_chain_4096x512": cases["gelu_chain"],
        "device_f32/gelu_chain_fwd_bwd_4096x512": cases["gelu_chain_fwd_bwd"],
        "device_f32/layer_norm_fwd_bwd_4096x512": cases["layer_norm_fwd_bwd"],
    }


def context_pool(x, a, a0, b, b0, s_min=0.5, s_max=8.0, radius=24, eps=1e-6):
    """ContextPool (docs/specs/contextpool.md, 1-D, normalised, not causal) written the way
    one writes it in eager PyTorch: with the dense n x n matrix of pooling weights."""
    n = x.shape[1]
    w = torch.sigmoid(x @ a + a0)                                   # [B, n]
    s = s_min + (s_max - s_min) * torch.sigmoid(x @ b + b0)         # [B, n]
    pos = torch.arange(n, dtype=x.dtype)
    dist2 = (pos[:, None] - pos[None, :]) ** 2                      # [n, n]
    mask = (dist2 <= radius * radius).to(x.dtype)
    g = torch.exp(-dist2 / (2 * s[:, :, None] ** 2)) * mask         # [B, n, n]
    u = g * w[:, None, :]
    z = u.sum(-1, keepdim=True)
    return (u @ x) / (z + eps)


def context_pool_unfold_case(n, causal=True):
    """The causal benches' peer: the ContextPool module above (windows by `unfold`), with the
    bench's random predictors."""
    x = torch.randn(16, n, 128).requires_grad_()
    g = torch.randn(16, n, 128)
    layer = ContextPool(128, causal=causal)
    with torch.no_grad():
        layer.weight_proj.weight.normal_(0, 0.1)
        layer.size_proj.weight.normal_(0, 0.3)
        layer.size_proj.bias.zero_()
    params = [x, *layer.parameters()]

    def fwd_bwd():
        for t in params:
            t.grad = None
        layer(x).backward(g)
    return fwd_bwd


def context_pool_case(n):
    x = torch.randn(16, n, 128).requires_grad_()
    g = torch.randn(16, n, 128)
    a = (0.1 * torch.randn(128)).requires_grad_()
    b = (0.3 * torch.randn(128)).requires_grad_()
    a0 = torch.zeros(()).requires_grad_()
    b0 = torch.zeros(()).requires_grad_()

    def fwd_bwd():
        for t in (x, a, b, a0, b0):
            t.grad = None
        context_pool(x, a, a0, b, b0).backward(g)
    return fwd_bwd


def mha_case(b=16, n=256, d=128, heads=4):
    """Self-attention as nn.MultiheadAttention computes it: one input projection, SDPA with
    is_causal, the output projection."""
    x = torch.randn(b, n, d).requires_grad_()
    g = torch.randn(b, n, d)
    in_proj = torch.nn.Linear(d, 3 * d)
    out_proj = torch.nn.Linear(d, d)
    params = [x, *in_proj.parameters(), *out_proj.parameters()]

    def fwd_bwd():
        for p in params:
            p.grad = None
        qkv = in_proj(x).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        out_proj(o.transpose(1, 2).reshape(b, n, d)).backward(g)
    return fwd_bwd


def sdpa_case(n, window=None):
    """Causal SDPA on [16, 4, n, 32]; with `window`, the causal band of that many keys as a bool
    mask (True = may attend), the way one writes local attention in PyTorch."""
    q, k, v = (torch.randn(16, 4, n, 32).requires_grad_() for _ in range(3))
    g = torch.randn(16, 4, n, 32)
    mask = None
    if window is not None:
        i = torch.arange(n)
        mask = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] <= window)

    def fwd_bwd():
        q.grad = k.grad = v.grad = None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        o.backward(g)
    return fwd_bwd


def peak_memory():
    """Growth of the resident high-water mark over one causal fwd+bwd at n = 4096, in a fresh
    process (what benches/attention.rs prints with CUBEGRAD_BENCH_MEMORY=1)."""
    import resource
    fwd_bwd = sdpa_case(4096)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fwd_bwd()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"PyTorch sdpa causal fwd+bwd [16, 4, 4096, 32] f32: peak memory +{(after - before) / 1e6:.1f} MB "
          f"over the inputs ({4 * 16 * 4 * 4096 * 32 * 4 / 1e6:.1f} MB of q, k, v, g)")


def conv_case():
    x = torch.randn(32, 32, 28, 28).requires_grad_()
    g = torch.randn(32, 64, 28, 28)
    conv = torch.nn.Conv2d(32, 64, 3, padding=1)

    def fwd_bwd():
        x.grad = conv.weight.grad = conv.bias.grad = None
        conv(x).backward(g)
    return fwd_bwd


class ContextPool(torch.nn.Module):
    """ContextPool (docs/specs/contextpool.md) written the best way in eager PyTorch: each
    token's window gathered with `unfold` (a view), so the work is O(n · window · d) like
    cubegrad's fused op, not O(n²)."""

    def __init__(self, d, s_min=0.5, s_max=8.0, causal=True, eps=1e-6):
        super().__init__()
        self.weight_proj = torch.nn.Linear(d, 1)
        self.size_proj = torch.nn.Linear(d, 1)
        torch.nn.init.zeros_(self.weight_proj.weight)
        torch.nn.init.zeros_(self.weight_proj.bias)
        torch.nn.init.zeros_(self.size_proj.weight)
        p = (1.0 - s_min) / (s_max - s_min)
        torch.nn.init.constant_(self.size_proj.bias, math.log(p / (1 - p)))
        self.s_min, self.s_max, self.causal, self.eps = s_min, s_max, causal, eps
        self.radius = math.ceil(3 * s_max)

    def forward(self, x):
        r = self.radius
        w = torch.sigmoid(self.weight_proj(x)).squeeze(-1)                           # [B, n]
        s = self.s_min + (self.s_max - self.s_min) * torch.sigmoid(self.size_proj(x)).squeeze(-1)
        after = 0 if self.causal else r
        taps = r + 1 + after
        offsets = torch.arange(-r, after + 1, dtype=x.dtype)                            # [K]
        xw = F.pad(x, (0, 0, r, after)).unfold(1, taps, 1)                             # [B, n, d, K]
        ww = F.pad(w, (r, after)).unfold(1, taps, 1)                                   # [B, n, K]
        u = ww * torch.exp(-offsets ** 2 / (2 * s[..., None] ** 2))                    # [B, n, K]
        z = u.sum(-1, keepdim=True)
        return torch.matmul(xw, u[..., None]).squeeze(-1) / (z + self.eps)


class PooledLayer(torch.nn.TransformerEncoderLayer):
    """A pre-norm encoder layer with ContextPool between the first norm and attention
    (queries, keys and values pooled), as cubegrad's TransformerEncoderLayer."""

    def __init__(self, d, heads, ff):
        super().__init__(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.context_pool = ContextPool(d)

    def forward(self, x, src_mask=None, src_key_padding_mask=None, is_causal=False):
        h = self.context_pool(self.norm1(x))
        x = x + self._sa_block(h, src_mask, src_key_padding_mask, is_causal=is_causal)
        return x + self._ff_block(self.norm2(x))


class CharLm(torch.nn.Module):
    """The contextpool_lm example's model (benches/train_step.rs)."""

    def __init__(self, layers, vocab=99, d=128, heads=4, seq=128, pooled=False, window=None):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        pos = torch.arange(seq, dtype=torch.float64)[:, None]
        freq = 10000.0 ** (-(torch.arange(d) // 2 * 2).double() / d)
        angle = pos * freq
        pe = torch.where(torch.arange(d) % 2 == 0, angle.sin(), angle.cos()).float()
        self.register_buffer("positions", pe)
        make = (lambda: PooledLayer(d, heads, 4 * d)) if pooled else (
            lambda: torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                                     batch_first=True, norm_first=True))
        self.layers = torch.nn.ModuleList(make() for _ in range(layers))
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab)
        i = torch.arange(seq)
        ahead = i[None, :] > i[:, None]
        if window is None:
            self.mask, self.is_causal = ahead, True
        else:
            # True = may not attend (PyTorch's convention): the future, and beyond the window.
            self.mask, self.is_causal = ahead | (i[:, None] - i[None, :] > window), False

    def forward(self, ids):
        h = self.embed(ids) + self.positions
        for layer in self.layers:
            h = layer(h, src_mask=self.mask, is_causal=self.is_causal)
        return self.head(self.norm(h))


def train_step_case(layers, pooled=False, window=None, batch=32, seq=128, vocab=99):
    model = CharLm(layers, vocab=vocab, seq=seq, pooled=pooled, window=window)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    i = torch.arange(batch * seq + 1)
    ids = (i * 7919 + 13) % vocab
    x, y = ids[:-1].reshape(batch, seq), ids[1:].reshape(batch, seq)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def median_ms(fn, no_grad, reps, min_seconds, sync=lambda: None):
    """Median wall time of one call, in ms, after 3 warm-up calls. With reps=None the count is
    chosen so the timed calls take about min_seconds in all, and never fewer than 10. `sync`
    waits for a GPU's queued work, as cubegrad's device bench does after every call."""
    ctx = torch.no_grad() if no_grad else torch.enable_grad()
    with ctx:
        for _ in range(3):
            fn()
        sync()
        if reps is None:
            t = time.perf_counter()
            fn()
            sync()
            one = max(time.perf_counter() - t, 1e-9)
            reps = max(10, math.ceil(min_seconds / one))
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="", help="run only ids containing this text")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per bench (default: enough for ~--seconds, at least 10)")
    p.add_argument("--seconds", type=float, default=1.0, help="target timed seconds per bench when --reps is not given")
    p.add_argument("--device", default="cpu",
                   help="cpu: the CPU benches; cuda: the GPU benches of benches/device.rs")
    p.add_argument("--matmul", type=int, default=4096, help="matmul size of the GPU benches")
    p.add_argument("--scale", type=int, default=1, help="divides the rows of the other GPU benches")
    p.add_argument("--memory", action="store_true",
                   help="print the peak memory of one causal attention fwd+bwd at n = 4096 instead")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.memory:
        peak_memory()
        return
    if args.device == "cpu":
        cases, sync = workloads(), (lambda: None)
    else:
        # PyTorch's default: f32 matmuls in full f32, no TF32, as cubegrad's.
        torch.backends.cuda.matmul.allow_tf32 = False
        cases = device_workloads(args.device, args.matmul, args.scale)
        sync = torch.cuda.synchronize
    results = {}
    for name, (fn, no_grad) in cases.items():
        if args.only in name:
            results[name] = median_ms(fn, no_grad, args.reps, args.seconds, sync)
    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
