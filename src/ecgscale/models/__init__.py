"""The scalable 1-D ResNet (depth D, width C, kernel K), its receptive field and its cost.

Imports torch only; never ``ecgscale.data`` (a model must not depend on how ECGs are read or cached).
"""

from ecgscale.models.receptive import Cost, ReceptiveField, cost, receptive_field
from ecgscale.models.resnet1d import BasicBlock1d, ResNet1d, ResNet1dConfig, build_resnet1d

__all__ = [
    "BasicBlock1d",
    "Cost",
    "ReceptiveField",
    "ResNet1d",
    "ResNet1dConfig",
    "build_resnet1d",
    "cost",
    "receptive_field",
]
