"""The concurrency, disk and safe-loading scenarios, in the order of the docs table (``SCENARIOS``)."""

from __future__ import annotations

from reliability.common import Scenario
from reliability.faults.concurrency import (
    prepare_killed_lock_released,
    prepare_twice_same_out,
    sweep_two_workers_postgres,
    sweep_two_workers_sqlite,
    train_twice_same_run_dir,
)
from reliability.faults.disk import (
    export_predict_read_only,
    prepare_disk_full,
    prepare_read_only,
    sweep_disk_full,
    sweep_read_only,
    synth_disk_full,
    train_disk_full_midrun,
)
from reliability.faults.safe_loading import malicious_files_in_run_dir, source_scan, torchscript_metadata_inert

__all__ = ["SCENARIOS"]

SCENARIOS: list[Scenario] = [
    prepare_twice_same_out,
    prepare_killed_lock_released,
    train_twice_same_run_dir,
    sweep_two_workers_sqlite,
    sweep_two_workers_postgres,
    prepare_disk_full,
    prepare_read_only,
    train_disk_full_midrun,
    sweep_disk_full,
    sweep_read_only,
    synth_disk_full,
    export_predict_read_only,
    source_scan,
    malicious_files_in_run_dir,
    torchscript_metadata_inert,
]
