"""Training: the Trainer, resumable safetensors checkpoints, evaluation of a run, data-parallel training.

``train_run`` trains one ResNet1d configuration on a prepared cache into a run directory (``RunDir``, its
``config.json`` a ``RunConfig``); ``evaluate_run`` scores it on a split with validation-tuned thresholds;
``load_run`` loads it back for prediction. ``Trainer`` is the cache-agnostic core: any train/val data yielding
``(x (12, L), y (K,))`` plus a label space.
"""

from ecgscale.train.checkpoint import LoadedRun, load_run
from ecgscale.train.config import TrainConfig
from ecgscale.train.evaluate import evaluate_run
from ecgscale.train.run import build_model, train_run
from ecgscale.train.rundir import RunConfig, RunDir
from ecgscale.train.trainer import DistContext, NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "DistContext",
    "LoadedRun",
    "NonFiniteLossError",
    "RunConfig",
    "RunDir",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_model",
    "evaluate_run",
    "load_run",
    "train_run",
]
