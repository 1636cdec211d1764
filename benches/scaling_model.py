#!/usr/bin/env python3
"""The step time of data-parallel training on N ranks, on paper (the README's "Many processes").

A step is the forward and backward on each rank's rows, then the all-reduce of the gradients
(cubegrad runs it after the backward pass; PyTorch's DDP overlaps it with the backward), then
the optimizer. With a ring all-reduce, each of the n_b buckets of a model of P bytes costs

    2 (N - 1) alpha  +  2 (N - 1) / N * bytes / beta

(reduce-scatter then all-gather: 2 (N - 1) messages of bytes / N each), so the whole model:

    T_allreduce = n_b * 2 (N - 1) alpha + 2 (N - 1) / N * P / beta

cubegrad's NCCL path stages each bucket through the host: add 2 P / beta_pcie.

    python3 benches/scaling_model.py

prints the table the README quotes. The interconnects' numbers are assumptions, stated below.
"""

import math

MIB = 1024 * 1024

# (name, ranks, bandwidth in bytes/s, latency per ring step in s, host staging bandwidth or None)
INTERCONNECTS = [
    # 8 GPUs on NVLink/NVSwitch (H100 SXM): NCCL's bus bandwidth for large all-reduces is about
    # 400 GB/s; a ring step costs a few microseconds. cubegrad stages through the host over
    # PCIe 5 x16 (about 50 GB/s each way).
    ("8 GPUs, NVLink (NCCL)", 8, 400e9, 5e-6, 50e9),
    # 16 CPU nodes on 25 GbE: 25 Gb/s = 3.125 GB/s per link, about 30 us per message over TCP.
    ("16 CPU nodes, 25 GbE (MPI)", 16, 3.125e9, 30e-6, None),
]

# (name, parameters)
MODELS = [
    # contextpool_lm's default model (2 layers, d 128), f32.
    ("contextpool_lm default (0.42 M params)", 422_759),
    # A GPT-2-small-sized model (12 layers, d 768), the scale of enwik8 character models.
    ("12-layer d 768 transformer (124 M params)", 124_000_000),
]


def allreduce_seconds(params, ranks, beta, alpha, staging, bucket_mib=25.0):
    size = 4 * params  # f32 gradients
    buckets = max(1, math.ceil(size / (bucket_mib * MIB)))
    latency = buckets * 2 * (ranks - 1) * alpha
    transfer = 2 * (ranks - 1) / ranks * size / beta
    stage = 2 * size / staging if staging else 0.0
    return latency, transfer, stage


def main():
    print("| model | interconnect | buckets of 25 MiB | latency term | bandwidth term | host staging | all-reduce per step |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, params in MODELS:
        for net, ranks, beta, alpha, staging in INTERCONNECTS:
            lat, bw, stage = allreduce_seconds(params, ranks, beta, alpha, staging)
            buckets = max(1, math.ceil(4 * params / (25 * MIB)))
            stage_text = f"{stage * 1e3:.2f} ms" if staging else "none"
            total = lat + bw + stage
            print(
                f"| {name} | {net} | {buckets} | {lat * 1e3:.3f} ms | {bw * 1e3:.3f} ms | "
                f"{stage_text} | {total * 1e3:.2f} ms |"
            )


if __name__ == "__main__":
    main()
