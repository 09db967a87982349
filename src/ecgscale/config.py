"""Validation shared by every ``from_dict``/config-file loader: one wording for one mistake."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from ecgscale.errors import ConfigError

__all__ = ["reject_unknown_keys"]


def reject_unknown_keys(
    data: Mapping[str, Any],
    allowed: Collection[str],
    *,
    what: str,
    file: str | os.PathLike[str] | None = None,
) -> None:
    """Raise ``ConfigError`` for keys outside ``allowed``: a typo must not silently become a default.

    ``what`` names the kind of settings ("preprocessing", "split", "model", ...) so the message says where the
    stray key was; the error's ``key`` is the first unknown key.
    """
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        others = f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise ConfigError(
            f"unknown {what} key{others}; allowed: {', '.join(sorted(allowed))}", file=file, key=unknown[0]
        )
