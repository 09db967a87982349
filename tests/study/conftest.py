"""Fixtures of the study tests: a throw-away PostgreSQL server on loopback (``reliability.postgres``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from reliability.postgres import PostgresUnavailable, postgres_server


@pytest.fixture(scope="session")
def postgres_url(require_or_skip) -> Iterator[str]:
    """A PostgreSQL server started for this test session (trust auth, loopback only, fsync off).

    Skips where none can be started, fails instead under CI (``require_or_skip`` in ``tests/conftest.py``).
    """
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            require_or_skip(str(exc))
        yield url
