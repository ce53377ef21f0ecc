"""One process of ``test_probe_scaling.test_two_processes_split_the_batches_and_agree``: started
by torchrun, it runs the gradient probe (sketch and exact) as process RANK of WORLD_SIZE and
writes what it got to ``<folder>/rank<RANK>.json``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from test_probe_scaling import probe
from tiny_models import build_model


def main(folder: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    for method in ("sketch", "exact"):
        spectra, info = probe(build_model("llama"), method, 1, world=world, rank=rank, probe_batches=4,
                              probe_batch_size=2)
        out[method], out["batches_per_process"] = spectra, info["batches_per_process"]
    Path(folder, f"rank{rank}.json").write_text(json.dumps(out))
    dist.barrier()  # leave together: a rank gone early would leave the other's gloo threads waiting
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
    # Everything is written and the group closed: skip the C++ static destructors, where gloo's
    # and the TCP store's threads can abort a process that succeeded (exit -6, "terminate called
    # without an active exception"), as the tool's own multi-process sweeps do (cli/run_cmd.exit_now).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
