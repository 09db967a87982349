"""Concurrency, disk-full / read-only and safe-loading faults (issue 7); ``scenarios.SCENARIOS`` lists them.

Disk scenarios mount a real tmpfs (root only: ``tmpfs.TmpfsUnavailable`` otherwise); the PostgreSQL scenario
starts a throw-away server (``reliability.postgres.PostgresUnavailable`` when none can start).
"""
