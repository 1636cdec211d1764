"""Ratios of cubegrad's criterion results to PyTorch eager on the same machine and threads.

    RAYON_NUM_THREADS=2 cargo bench --bench matmul --bench softmax --bench elementwise
    python3 benches/peers/compare.py --threads 2

It runs torch_peer.py (the same workloads in PyTorch) and reads criterion's medians from
target/criterion/<group>/<function>/new/estimates.json. The ratio is cubegrad time / PyTorch
time: lower is better, below 1 means cubegrad is faster. Both sides must use the same thread
count: --threads (default 2) sets PyTorch's, and cubegrad's rayon pool is set by running cargo
bench with RAYON_NUM_THREADS=2 (which is also rayon's default, one thread per core, on a
2-core machine). Rows whose criterion results are missing say "not run".

Options: --threads N, --only SUBSTRING (filter bench ids), --reps K (passed to torch_peer.py),
--criterion-dir DIR (default <repo>/target/criterion), --json OUT (also write the rows as JSON).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# Targets from the foundation issue: ratio must be at most this.
# From the foundation issue (matmul) and the layers issue (ContextPool).
TARGETS = {
    "matmul_f32/1024": 1.2,
    "context_pool_f32/fwd_bwd_n256": 0.5,
    "context_pool_f32/fwd_bwd_n1024": 0.05,
    "conv_f32/conv2d_fwd_bwd_b32_c32_o64_28x28_k3": 1.5,
}
# The CubeCL backend issue's GPU targets, as time ratios: matmul at least 0.7x cuBLAS's
# throughput (time at most 1/0.7), softmax and element-wise chains at least 0.9x of PyTorch.
for _n in (4096, 2048, 1024, 512, 256):
    TARGETS[f"device_f32/matmul_{_n}"] = round(1 / 0.7, 2)
for _id in ("softmax_fwd_16384x256", "softmax_fwd_bwd_16384x256", "gelu_chain_4096x512",
            "gelu_chain_fwd_bwd_4096x512", "layer_norm_fwd_bwd_4096x512"):
    TARGETS[f"device_f32/{_id}"] = round(1 / 0.9, 2)
DEFAULT_TARGET = 1.0


def criterion_ms(crit_dir, bench_id):
    path = os.path.join(crit_dir, *bench_id.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"] / 1e6
    except (OSError, KeyError, ValueError):
        return None


def main():
    p = argparse.ArgumentParser(description="cubegrad vs PyTorch eager: time ratios")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", default="", help="only bench ids containing this text")
    p.add_argument("--reps", type=int, help="timed repetitions per PyTorch bench (see torch_peer.py)")
    p.add_argument("--criterion-dir", default=os.path.join(ROOT, "target", "criterion"))
    p.add_argument("--json", help="also write the rows as JSON to this file")
    p.add_argument("--device", default="cpu", help="cuda: compare benches/device.rs with PyTorch CUDA")
    p.add_argument("--matmul", type=int, default=4096, help="with --device: CUBEGRAD_BENCH_MATMUL")
    p.add_argument("--scale", type=int, default=1, help="with --device: CUBEGRAD_BENCH_SCALE")
    args = p.parse_args()
    cmd = [sys.executable, os.path.join(HERE, "torch_peer.py"), "--threads", str(args.threads), "--only", args.only,
           "--device", args.device, "--matmul", str(args.matmul), "--scale", str(args.scale)]
    if args.reps is not None:
        cmd += ["--reps", str(args.reps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"torch_peer.py failed (exit {proc.returncode}):\n{proc.stderr}")
    peer = json.loads(proc.stdout)
    rows = []
    print(f"PyTorch {peer['torch']}, {peer['threads']} threads\n")
    print("| bench id | cubegrad ms | PyTorch ms | ratio (cubegrad/PyTorch, lower is better) | target | met? |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for bench_id, torch_ms in peer["results"].items():
        ours = criterion_ms(args.criterion_dir, bench_id)
        target = TARGETS.get(bench_id, DEFAULT_TARGET)
        if ours is None:
            print(f"| {bench_id} | not run | {torch_ms:.3f} | not run | ≤ {target} | not run |")
            rows.append({"bench": bench_id, "cubegrad_ms": None, "torch_ms": torch_ms, "ratio": None, "target": target, "met": None})
            continue
        ratio = ours / torch_ms
        met = "yes" if ratio <= target else "no"
        print(f"| {bench_id} | {ours:.3f} | {torch_ms:.3f} | {ratio:.2f} | ≤ {target} | {met} |")
        rows.append({"bench": bench_id, "cubegrad_ms": ours, "torch_ms": torch_ms, "ratio": ratio, "target": target, "met": ratio <= target})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": peer["torch"], "threads": peer["threads"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
