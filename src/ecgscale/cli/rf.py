"""CLI command ``rf``: receptive field, parameters and FLOPs of a D x C x K ResNet without training it."""

from __future__ import annotations

import json

import typer

from ecgscale.cli._app import app, console

__all__ = ["rf"]


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


@app.command("rf")
def rf(
    depth: int = typer.Option(..., "--depth", "-d", help="D: number of residual blocks."),
    channels: int = typer.Option(..., "--channels", "-c", help="C: channel width of the first stage."),
    kernel: int = typer.Option(..., "--kernel", "-k", help="K: kernel size of every residual convolution (odd)."),
    fs: float = typer.Option(250.0, "--fs", help="Sampling rate in Hz (converts samples to seconds)."),
    n_samples: int = typer.Option(2500, "--n-samples", "-n", help="Input length in samples (10 s at 250 Hz)."),
    no_gap: bool = typer.Option(False, "--no-gap", help="Flatten + linear head instead of global average pooling."),
    channel_growth: str = typer.Option("constant", "--channel-growth", help="constant, or double per stage."),
    n_leads: int = typer.Option(12, "--n-leads", help="Input leads."),
    n_classes: int = typer.Option(26, "--n-classes", help="Output classes (26 = CinC 2021 scored)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Receptive field (samples, seconds), parameters and FLOPs of one configuration.

    The receptive field is that of one position of the last feature map (what GAP averages over); FLOPs
    are for the forward pass of one record of --n-samples (training costs about 3x).
    """
    from ecgscale.models import ResNet1dConfig, cost, receptive_field

    config = ResNet1dConfig(
        depth=depth,
        channels=channels,
        kernel_size=kernel,
        gap=not no_gap,
        n_leads=n_leads,
        n_classes=n_classes,
        channel_growth=channel_growth,  # type: ignore[arg-type]
        input_length=n_samples if no_gap else None,
    )
    final = config.validate_input_length(n_samples)
    field = receptive_field(config, fs=fs)
    price = cost(config, n_samples)
    result = {
        "config": config.to_dict(),
        "tag": config.tag,
        "n_samples": n_samples,
        "fs": fs,
        "receptive_field": field.to_dict(),
        "feature_length": final,
        "params": price.params,
        "flops": price.flops,
        "macs": price.macs,
        "breakdown_macs": dict(price.breakdown),
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return

    from rich.table import Table

    table = Table(title=f"{config.tag} on {n_samples} samples at {fs:g} Hz", show_header=True)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("receptive field", f"{field.samples} samples = {field.seconds:.3f} s")
    table.add_row("feature stride (jump)", f"{field.jump} samples = {1000 * field.jump / fs:.1f} ms")
    table.add_row("last feature map", f"{config.out_channels} channels x {final} steps")
    table.add_row("head", "GAP + linear" if config.gap else "flatten + linear (fixed length)")
    table.add_row("parameters", f"{price.params:,} ({_human(price.params)})")
    table.add_row("forward FLOPs / record", f"{price.flops:,} ({_human(price.flops)})")
    table.add_row("training FLOPs / record (~3x)", _human(3 * price.flops))
    console.print(table)
