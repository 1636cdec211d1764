"""The peer of benches/distributed_scaling.sh: the contextpool_lm models in PyTorch, one process
with 2 threads against 2 processes with 1 thread each under DistributedDataParallel (Gloo, the
CPU backend), with the same global batch of 32; and, for the 2-process step, how much of it the
gradient all-reduce costs (the step with DDP's synchronisation against the same step inside
`no_sync()`, which skips it).

    python3 benches/peers/distributed_peer.py [--models contextpool,baseline] [--steps 40]

Prints one Markdown row per model, in the columns of distributed_scaling.sh.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import CharLm  # noqa: E402

VOCAB, SEQ, BATCH = 99, 128, 32
# contextpool_lm's models: (layers, pooled)
MODELS = {"contextpool": (2, True), "baseline": (4, False)}


def batch(rows, rank=0, world=1):
    """The global batch (the same fixed ids on every rank), and this rank's rows of it."""
    i = torch.arange(BATCH * SEQ + 1)
    ids = (i * 7919 + 13) % VOCAB
    x, y = ids[:-1].reshape(BATCH, SEQ), ids[1:].reshape(BATCH, SEQ)
    per = rows // world
    return x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]


def timed_steps(model, opt, x, y, steps, sync_context=None):
    """Milliseconds per step over `steps` steps after 5 warm-up steps."""
    def step():
        opt.zero_grad(set_to_none=True)
        ctx = sync_context() if sync_context else torch.enable_grad()
        with ctx:
            logits = model(x)
            F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1000


def one_process(name, steps):
    torch.set_num_threads(2)
    layers, pooled = MODELS[name]
    torch.manual_seed(0)
    model = CharLm(layers, vocab=VOCAB, seq=SEQ, pooled=pooled)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x, y = batch(BATCH)
    return timed_steps(model, opt, x, y, steps), sum(p.numel() for p in model.parameters())


def rank_main(rank, world, name, steps, port, results):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    layers, pooled = MODELS[name]
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(
        CharLm(layers, vocab=VOCAB, seq=SEQ, pooled=pooled), bucket_cap_mb=25)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    x, y = batch(BATCH, rank, world)
    synced = timed_steps(model, opt, x, y, steps)
    unsynced = timed_steps(model, opt, x, y, steps, sync_context=model.no_sync)
    if rank == 0:
        results.put((synced, unsynced))
    dist.barrier()
    dist.destroy_process_group()


def two_processes(name, steps, port):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    procs = [ctx.Process(target=rank_main, args=(r, 2, name, steps, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a rank failed with exit code {p.exitcode}")
    return results.get()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="contextpool,baseline")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print("| model (PyTorch DDP, Gloo) | parameters | 1 rank × 2 threads (ms/step) | 2 ranks × 1 thread (ms/step) | ratio 2 ranks / 1 rank | all-reduce share of the 2-rank step |")
    print("| --- | --- | --- | --- | --- | --- |")
    port = 29500 + os.getpid() % 1000
    for name in args.models.split(","):
        ones, twos, shares = [], [], []
        for run in range(args.runs):
            ms, params = one_process(name, args.steps)
            synced, unsynced = two_processes(name, args.steps, port + run)
            ones.append(ms)
            twos.append(synced)
            shares.append(max(0.0, synced - unsynced) / synced)
        m1, m2 = statistics.median(ones), statistics.median(twos)
        print(f"| {name} | {params:,} | {m1:.1f} | {m2:.1f} | {m2 / m1:.2f} | {100 * statistics.median(shares):.1f}% |",
              flush=True)


if __name__ == "__main__":
    main()
