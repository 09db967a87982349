"""``ecgscale ...`` command lines rendered from settings: the one place library code spells a CLI flag.

The demo's reproduce list, the report's "Reproduce" section and ``ecgscale recommend`` print commands a user can
paste; they build them here from settings (a training protocol, an architecture, preprocessing), never by writing
flags themselves. Options are keyed by the CLI's parameter names (``batch_size``, ``max_store_s``) and rendered by
one rule: ``--`` and the name with dashes, except where :data:`FLAGS` says otherwise. ``True`` is a bare flag;
``False`` and ``None`` leave the option out (an option of :data:`NEGATABLE` becomes ``--no-<name>``); lists are
joined by commas, floats written exactly and briefly, values shell-quoted when needed.

``tests/test_commands.py`` parses rendered lines with the typer app and checks that they give the same settings,
and that :func:`flag` names every option the CLI has.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from ecgscale.errors import ConfigError

__all__ = [
    "FLAGS",
    "NEGATABLE",
    "TRAIN_OPTIONS",
    "architecture_options",
    "command_line",
    "flag",
    "prepare_options",
    "train_command",
    "train_options",
]

#: CLI parameters whose flag is not ``--`` + the name with dashes.
FLAGS: Mapping[str, str] = {
    "as_json": "--json",
    "fmt": "--format",
    "max_store_s": "--max-store",
    "window_s": "--window",
}
#: Boolean options declared ``--name/--no-name``: ``False`` renders ``--no-name``.
NEGATABLE: frozenset[str] = frozenset(
    {"by_patient", "figures", "per_class", "progress", "standardize", "verify", "wait"}
)
#: Training settings (``TrainConfig`` fields) that ``ecgscale train`` takes as ``--name value`` and that a study's
#: protocol carries to the model it recommends; ``patience`` and ``pos_weight`` follow (see :func:`train_options`).
#: The others have no flag or no use outside one run (``device``, ``num_workers``, ``seed``).
TRAIN_OPTIONS: tuple[str, ...] = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "monitor",
    "crop_s",
    "eval_stride_s",
    "eval_aggregate",
    "leads",
)
#: ``ecgscale prepare`` options for ``PreprocessConfig`` fields beyond the four it always gets (rendered when
#: they differ from the config's defaults); a changed field outside these has no flag and is refused.
_PREPARE_EXTRA: tuple[str, ...] = ("standardize", "dtype", "resampler")


def flag(name: str) -> str:
    """The flag of CLI parameter ``name``: ``batch_size`` -> ``--batch-size``, ``window_s`` -> ``--window``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _text(value: Any) -> str:
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    return str(value)


def command_line(command: str, *arguments: Any, **options: Any) -> str:
    """``ecgscale <command> ARGUMENTS --option value ...``, options in the order given (see the module docstring)."""
    words = [_text(a) for a in arguments]
    for name, value in options.items():
        if value is True:
            words.append(flag(name))
        elif value is False and name in NEGATABLE:
            words.append("--no-" + flag(name).removeprefix("--"))
        elif value is not None and value is not False:
            words += [flag(name), _text(value)]
    return " ".join(["ecgscale", command, *(shlex.quote(w) for w in words)])


def architecture_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """``ecgscale train`` options of an architecture (``depth``, ``channels``, ``kernel_size``, ``gap``, and
    ``dropout`` when present and non-zero), e.g. a ``ResNet1dConfig.to_dict()`` or a recommended configuration."""
    options = {
        "depth": config["depth"],
        "channels": config["channels"],
        "kernel": config["kernel_size"],
        "no_gap": not config["gap"],
    }
    if config.get("dropout"):
        options["dropout"] = config["dropout"]
    return options


def train_options(train: Mapping[str, Any]) -> dict[str, Any]:
    """``ecgscale train`` options reproducing the training settings in ``train`` (``TrainConfig`` field names,
    e.g. a study's protocol): the :data:`TRAIN_OPTIONS` present, ``patience`` (``None``, no early stopping, is
    ``--patience 0``) when present, ``--pos-weight`` when true."""
    options = {key: train[key] for key in TRAIN_OPTIONS if train.get(key) is not None}
    if "patience" in train:
        options["patience"] = train["patience"] or 0
    if train.get("pos_weight"):
        options["pos_weight"] = True
    return options


def prepare_options(config: Any) -> dict[str, Any]:
    """``ecgscale prepare`` options of a ``PreprocessConfig``: rate, window, stored length and band-pass, plus
    each other setting that differs from its default. Raises ``ConfigError`` for a changed setting the command
    has no option for (``filter_order``)."""
    options: dict[str, Any] = {
        "fs": config.fs,
        "window_s": config.window_s,
        "max_store_s": config.max_store_s,
        "bandpass": "none" if config.bandpass is None else config.bandpass,
    }
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in options or value == f.default:
            continue
        if f.name not in _PREPARE_EXTRA:
            raise ConfigError(f"got {value!r}; `ecgscale prepare` has no option for it", key=f.name)
        options[f.name] = value
    return options


def train_command(
    *, cache: Any, architecture: Mapping[str, Any], train: Mapping[str, Any] | None = None, out: Any, **options: Any
) -> str:
    """The ``ecgscale train`` line for ``architecture`` trained with ``train`` (see :func:`train_options`), then
    the further ``options`` (``seed``, ``device``, ...) and ``--out``."""
    return command_line(
        "train",
        cache=cache,
        **architecture_options(architecture),
        **train_options(train or {}),
        **options,
        out=out,
    )
