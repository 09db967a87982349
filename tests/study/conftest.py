"""Fixtures of the study tests: a throw-away PostgreSQL server on loopback (``reliability.postgres``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from reliability.postgres import PostgresUnavailable, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server started for this test session (trust auth, loopback only, fsync off)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.skip(str(exc))
        yield url
