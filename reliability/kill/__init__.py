"""kill -9 harness: ``prepare``, ``train`` and ``sweep`` killed at seeded points, resumed, compared with clean runs."""

from reliability.kill.scenarios import SCENARIOS

__all__ = ["SCENARIOS"]
