"""``rcs bench policy``: chunk inference latency of a policy checkpoint on this CPU.

Loads the checkpoint exactly as the server does (:class:`policies.lerobot_adapter.LerobotPolicy`: lerobot's
``from_pretrained`` + processors), feeds it observations of its own schema (random state vectors, random
images, the instruction when it takes one) and times ``infer`` (preprocess + ``predict_action_chunk`` +
postprocess) per call. Reports p50/p99/max in ms, with the torch thread count and the machine's load
average (the CPU may be shared: say so next to the numbers).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

#: the issue's target for the rcs_diffusion policy: chunk inference p50 on this CPU.
TARGET_P50_MS = 15.0


def shipped_checkpoint() -> Path:
    """Directory of the checkpoint shipped in the ``policies`` package (pick-cube, rcs_diffusion)."""
    import policies  # lazily: this package stays importable without the policy code

    return Path(policies.__file__).resolve().parent / "checkpoints" / "pick_cube_rcs_diffusion"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--instruction", default="pick the red cube", help="text for language-conditioned policies")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from policies.lerobot_adapter import LerobotPolicy
    from rcs.serving.policy import read_manifest
    from rcs.serving.protocol import TEXT_UNIT, encode_text

    torch.set_num_threads(args.threads)
    directory, manifest = read_manifest(args.policy if args.policy is not None else shipped_checkpoint())
    policy = LerobotPolicy(directory, manifest)
    rng = np.random.default_rng(0)

    def observation() -> dict[str, np.ndarray]:
        out = {}
        for spec in policy.schema.observation:
            if spec.unit == TEXT_UNIT:
                out[spec.name] = encode_text(args.instruction, spec.shape[0])
            elif spec.dtype == "uint8":
                out[spec.name] = rng.integers(0, 256, spec.shape, dtype=np.uint8)
            else:
                out[spec.name] = rng.random(spec.shape).astype(spec.dtype)
        return out

    for _ in range(args.warmup):
        policy.infer([observation()])
    times = []
    for _ in range(args.calls):
        obs = observation()
        t0 = time.perf_counter()
        chunk = policy.infer([obs])[0]
        times.append(1e3 * (time.perf_counter() - t0))
    t = np.array(times)
    p50 = float(np.percentile(t, 50))
    return {
        "policy": str(directory),
        "checkpoint_id": policy.checkpoint_id,
        "chunk_shape": list(chunk.shape),
        "calls": args.calls,
        "torch_threads": args.threads,
        "infer_ms": {
            "p50": round(p50, 2),
            "p99": round(float(np.percentile(t, 99)), 2),
            "max": round(float(t.max()), 2),
        },
        "target_p50_ms": TARGET_P50_MS,
        "target_met": p50 <= TARGET_P50_MS,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
