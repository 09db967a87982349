"""Export a trained run to ONNX or TorchScript: probabilities out (sigmoid included), labels and preprocessing in.

The exported graph takes ``ecg``: float32 ``(batch, n_leads, time)`` — the run's lead set (``input.leads``; all 12
by default) in ``STANDARD_LEADS`` order, already
preprocessed exactly as the run's ``preprocess`` metadata describes (resampled to its ``fs``, band-passed,
standardised per lead) — and returns ``probabilities``: float32 ``(batch, n_classes)``, the sigmoid of the logits.
The batch axis is dynamic. ``time`` is fixed to the training window for no-GAP models (their flatten + linear head
has a fixed size); GAP models accept any length the network can process, but were trained on windows of
``window_samples`` (the training crop of a crop-trained run, e.g. 2.5 s; predictions then combine windows every
``stride_samples`` by ``aggregate``).

Everything a consumer needs travels inside the file (ONNX ``metadata_props``; TorchScript ``_extra_files``), as
JSON strings under the same keys: ``labels``, ``label_space``, ``thresholds``, ``preprocess``,
``preprocess_hash``, ``model``, ``input``, ``output``, ``ecgscale_version``.

ONNX goes through ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based exporter): the dynamo
exporter of torch 2.13 needs an onnxscript release with torch-2.11+ support, newer than the pinned 0.5.6. The
graph is checked with ``onnx.checker`` and, by default, run with onnxruntime against the PyTorch model.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgscale.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.train.checkpoint import LoadedRun

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "ExportResult",
    "export_metadata",
    "export_model",
    "read_export_metadata",
]

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "torchscript")
INPUT_NAME = "ecg"
OUTPUT_NAME = "probabilities"
MIN_OPSET = 17
#: Largest allowed difference between exported and PyTorch probabilities when ``verify=True``.
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely the exported model matched PyTorch."""

    path: Path
    format: str
    metadata: dict[str, str] = field(repr=False)
    dynamic_time: bool
    max_abs_diff: float | None  # None when not verified


def _probability_module(model: Any, *, check_length: bool) -> Any:
    import torch

    class ProbabilityModel(torch.nn.Module):
        """ResNet1d logits → sigmoid probabilities, so consumers never re-implement the output activation."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net(x))

    class TracedProbabilityModel(ProbabilityModel):
        # The ONNX exporter traces: skip ResNet1d.forward's Python length check (a data-dependent branch);
        # a no-GAP graph has a static time axis instead, which onnxruntime enforces.
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.net.forward_head(self.net.forward_features(x)))

    net = copy.deepcopy(model).cpu().eval()
    if hasattr(net, "layout"):
        net.layout = "ncl"  # plain Conv1d graph: the channels-last trick is a CPU/bf16 speed detail of PyTorch
    return (ProbabilityModel if check_length else TracedProbabilityModel)(net).eval()


def model_windows(loaded: LoadedRun, preprocess: PreprocessConfig) -> dict[str, Any]:
    """The windows the model sees: its training crops when it was trained on crops (``eval_windows`` of the run:
    length, stride, aggregation), else the whole preprocessing window, one per record."""
    spec = loaded.config.parse_eval_windows()
    if spec is not None:
        stride = spec.length if spec.stride is None else spec.stride  # None: adjacent windows (WindowSpec)
        return {"length": spec.length, "stride": int(stride), "aggregate": spec.aggregate}
    window = int(preprocess.window_samples)
    return {"length": window, "stride": window, "aggregate": "mean"}


def export_metadata(loaded: LoadedRun, preprocess: PreprocessConfig, *, dynamic_time: bool) -> dict[str, str]:
    """The metadata stored with an export: JSON strings keyed as in the module docstring."""
    from ecgscale import __version__

    space = loaded.label_space
    windows = model_windows(loaded, preprocess)
    window = windows["length"]
    labels = [
        {"key": c.key, "abbreviation": c.abbreviation, "name": c.name, "codes": list(c.codes)} for c in space.classes
    ]
    model_cfg = loaded.config.get("model")
    meta = {
        "labels": labels,
        "label_space": space.to_dict(),
        "thresholds": [float(t) for t in loaded.thresholds],
        "thresholds_source": loaded.config.get("thresholds_source", "val"),
        "preprocess": preprocess.to_dict(),
        "preprocess_hash": preprocess.hash(),
        "model": model_cfg,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", len(loaded.leads), "time" if dynamic_time else window],
            "dtype": "float32",
            "leads": list(loaded.leads.names),
            "lead_set": loaded.leads.tag,
            "fs": preprocess.fs,
            "record_units": "mV",  # what records are read in before 'preprocess' (readers convert uV/V headers)
            "window_samples": window,
            "stride_samples": windows["stride"],
            "aggregate": windows["aggregate"],
            "dynamic_time": dynamic_time,
            "note": "preprocessed signal (ecgscale.data.transforms.preprocess with 'preprocess'); a record is cut "
            "into windows of window_samples every stride_samples and their probabilities combined by 'aggregate' "
            "(mean or max), as ecgscale predict does",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(space)],
            "activation": "sigmoid",
            "meaning": "per-class probabilities in 'labels' order; positive when >= 'thresholds'",
        },
        "ecgscale_version": __version__,
        "git_sha": loaded.config.get("git_sha"),
        "best_epoch": loaded.config.get("best_epoch"),
    }
    return {k: json.dumps(v) for k, v in meta.items()}


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded metadata of an exported ``.onnx`` or TorchScript file (format detected from the content)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: exported model file not found")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        # The metadata are plain ``<archive>/extra/<key>`` entries: read them with zipfile. ``torch.jit.load``
        # would unpickle and compile the archive's code, and this function takes files from anywhere (ecgscale
        # runs a TorchScript file only right after writing it, in export_model's parity check).
        import zipfile

        try:
            with zipfile.ZipFile(p) as zf:
                raw = {}
                for name in zf.namelist():
                    head_, sep, key = name.partition("/extra/")
                    if sep and "/" not in head_ and key in _METADATA_KEYS:
                        raw[key] = zf.read(name).decode("utf-8")
        except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
            raise CheckpointError(f"{p}: not a readable TorchScript archive ({exc})") from exc
    else:
        import onnx

        model = onnx.load(str(p), load_external_data=False)
        raw = {prop.key: prop.value for prop in model.metadata_props}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


_METADATA_KEYS = (
    "labels",
    "label_space",
    "thresholds",
    "thresholds_source",
    "preprocess",
    "preprocess_hash",
    "model",
    "input",
    "output",
    "ecgscale_version",
    "git_sha",
    "best_epoch",
)


def _example(batch: int, length: int, seed: int = 0, n_leads: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, n_leads, length)).astype(np.float32)


def _torch_probs(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def _export_onnx(
    wrapper: Any,
    out: Path,
    metadata: dict[str, str],
    *,
    length: int,
    dynamic_time: bool,
    opset: int,
    n_leads: int = 12,
) -> None:
    import onnx
    import torch

    axes = {INPUT_NAME: {0: "batch", **({2: "time"} if dynamic_time else {})}, OUTPUT_NAME: {0: "batch"}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter announces its own deprecation on every call; the module docstring says why it is used.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            wrapper,
            (torch.from_numpy(_example(2, length, n_leads=n_leads)),),
            buf,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ecgscale"
    proto.doc_string = f"ecgscale ResNet1d: preprocessed {n_leads}-lead ECG windows -> per-class sigmoid probabilities"
    onnx.checker.check_model(proto, full_check=True)
    from ecgscale.fileio import write_bytes_atomic

    write_bytes_atomic(out, proto.SerializeToString())


def _export_torchscript(wrapper: Any, out: Path, metadata: dict[str, str]) -> None:
    import torch

    from ecgscale.fileio import atomic_path

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        scripted = torch.jit.script(wrapper)
        with atomic_path(out, suffix=".pt") as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files=dict(metadata))


def _run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def export_model(
    run_dir: str | os.PathLike[str],
    format: str,
    out: str | os.PathLike[str],
    *,
    opset: int = MIN_OPSET,
    dynamic_time: bool | None = None,
    verify: bool = True,
) -> ExportResult:
    """Export the run's best model to ``out`` as ``"onnx"`` or ``"torchscript"`` (written atomically).

    ``dynamic_time`` defaults to True for GAP models and must be False for no-GAP ones. ``verify`` runs the
    exported file (onnxruntime / ``torch.jit.load``) on batches of 1 and 5 windows and raises
    ``CheckpointError`` if a probability differs from PyTorch's by more than ``PARITY_TOLERANCE``.
    """
    from ecgscale.infer._run import open_run

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"got {format!r}; allowed: {' | '.join(EXPORT_FORMATS)}", key="format")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"got {opset!r}; allowed: an integer >= {MIN_OPSET}", key="opset")
    loaded, preprocess = open_run(run_dir)
    model = loaded.model
    gap = bool(getattr(getattr(model, "config", None), "gap", True))
    if dynamic_time is None:
        dynamic_time = gap
    if dynamic_time and not gap:
        raise ConfigError(
            "a no-GAP model has a fixed input length (its flatten + linear head has a fixed size); "
            "export it with a fixed time axis (dynamic_time=False)",
            key="dynamic_time",
        )
    length = model_windows(loaded, preprocess)["length"]  # a crop-trained no-GAP head takes crops, not 10 s
    out = Path(out)
    metadata = export_metadata(loaded, preprocess, dynamic_time=dynamic_time)
    if format == "onnx":
        _export_onnx(
            _probability_module(model, check_length=False),
            out,
            metadata,
            length=length,
            dynamic_time=dynamic_time,
            opset=opset,
            n_leads=len(loaded.leads),
        )
    else:
        _export_torchscript(_probability_module(model, check_length=True), out, metadata)
    diff = None
    if verify:
        reference = copy.deepcopy(model).cpu().eval()
        diff = 0.0
        for batch in (1, 5):
            x = _example(batch, length, seed=batch, n_leads=len(loaded.leads))
            got = _run_exported(out, format, x)
            want = _torch_probs(reference, x)
            if got.shape != want.shape:
                raise CheckpointError(f"{out}: exported model returns shape {got.shape}, PyTorch {want.shape}")
            diff = max(diff, float(np.max(np.abs(got - want))))
        if diff > PARITY_TOLERANCE:
            raise CheckpointError(
                f"{out}: exported probabilities differ from PyTorch by up to {diff:.2e} "
                f"(allowed {PARITY_TOLERANCE:g}); the export is not faithful"
            )
    log.debug(
        "exported %s to %s (%s time axis%s)",
        format,
        out,
        "dynamic" if dynamic_time else "fixed",
        "" if diff is None else f", max |diff| {diff:.1e}",
    )
    return ExportResult(path=out, format=format, metadata=metadata, dynamic_time=dynamic_time, max_abs_diff=diff)
