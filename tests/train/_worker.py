"""Subprocess side of the resume-after-kill tests (run as a script, not collected; DDP: ``_ddp_worker.py``).

python _worker.py train OUT [--slow SECONDS] [--resume]      one training run of the tiny ResNet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _planted

from ecgscale.train import TrainConfig, Trainer

RESUME_CONFIG = TrainConfig(epochs=3, batch_size=16, lr=3e-3, precision="fp32", checkpoint_every=2, patience=None)


def resume_data():
    """A smaller planted set for the resume test: 128 training records, 8 steps of 16 per epoch."""
    return _planted.planted(128, 1), _planted.planted(64, 2)


def run_train(out: str, slow: float, resume: bool) -> None:
    (xt, yt), (xv, yv) = resume_data()
    model = _planted.tiny_resnet(seed=0, dropout=0.2)
    if slow:
        model.register_forward_pre_hook(lambda m, a: time.sleep(slow) if m.training else None)
    Trainer(
        model, _planted.space(), RESUME_CONFIG, train_data=(xt, yt), val_data=(xv, yv), out_dir=out, progress=False
    ).fit(resume=resume)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train"])
    p.add_argument("out")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    run_train(a.out, a.slow, a.resume)
