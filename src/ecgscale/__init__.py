"""ecgscale: find the right scale of a 1-D ResNet for 12-lead ECG classification.

The package is organised by responsibility (see ``docs/design.md``): ``data`` reads and caches ECGs,
``synth`` generates the synthetic benchmark, ``models`` builds the scalable ResNet, ``train`` fits it,
``metrics`` scores it, ``study`` runs scale sweeps and searches, ``report`` turns studies into tables and
figures, ``infer`` predicts on new ECGs and exports models, and ``cli`` is the command line.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
