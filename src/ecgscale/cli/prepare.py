"""CLI commands: prepare (registered on the shared app)."""

from __future__ import annotations

from ecgscale.cli._app import app  # noqa: F401
