"""Scale studies on optuna: grids and sweeps, TPE search over wide/narrow spaces, and their analysis.

The only package that imports optuna (lazily, inside functions, so importing ``ecgscale.study`` stays cheap).
"""

from ecgscale.study.grids import ArchPoint, Grid, axes_grid, factorial_grid, load_grid, paper_grid, resolve_grid
from ecgscale.study.objective import SurrogateRunner, TrainRunner, TrialConfig, TrialOutcome, cache_identity
from ecgscale.study.results import load_study, study_results
from ecgscale.study.spaces import SearchSpace, load_space, narrow_space, space_from_results, wide_space
from ecgscale.study.sweep import SweepSettings, SweepSummary, run_sweep

__all__ = [
    "ArchPoint",
    "Grid",
    "SearchSpace",
    "SurrogateRunner",
    "SweepSettings",
    "SweepSummary",
    "TrainRunner",
    "TrialConfig",
    "TrialOutcome",
    "axes_grid",
    "cache_identity",
    "factorial_grid",
    "load_grid",
    "load_space",
    "load_study",
    "narrow_space",
    "paper_grid",
    "resolve_grid",
    "run_sweep",
    "space_from_results",
    "study_results",
    "wide_space",
]
