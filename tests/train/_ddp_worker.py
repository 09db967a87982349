"""Subprocess side of the data-parallel test (run under torchrun as a script, not collected).

torchrun --standalone --nproc_per_node=2 _ddp_worker.py OUT     train the small BatchNorm ResNet with DDP over gloo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _planted

from ecgscale.train import DistContext, TrainConfig, Trainer

#: 256 training records, global batch 32 (16 per process), 8 steps per epoch; no randomness besides the data order.
DDP_CONFIG = TrainConfig(
    epochs=2, batch_size=32, lr=3e-3, precision="fp32", checkpoint_every=0, patience=None, random_crop=False
)


def ddp_data():
    return _planted.planted(256, 1), _planted.planted(128, 2)


def ddp_model():
    """The ResNet with BatchNorm after every convolution: D=2, C=16, K=5, ``ncl`` layout, no dropout."""
    from ecgscale.models import build_resnet1d

    return build_resnet1d(2, 16, 5, n_classes=_planted.K, generator=0, layout="ncl")


def main(out: str) -> None:
    import torch.distributed as dist

    from ecgscale.train.distributed import context_from_env, init_distributed

    ctx = context_from_env(os.environ)
    assert ctx is not None and ctx.world_size == 2
    init_distributed(ctx, device="cpu")
    try:
        (xt, yt), (xv, yv) = ddp_data()
        Trainer(
            ddp_model(),
            _planted.space(),
            DDP_CONFIG,
            train_data=(xt, yt),
            val_data=(xv, yv),
            out_dir=out,
            progress=False,
            dist=DistContext(ctx.rank, ctx.world_size, ctx.local_rank),
        ).fit()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
