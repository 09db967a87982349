"""CLI command ``ecgscale reduce-leads``: reduced-lead copies of CinC 2021 records (registered on the shared app)."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgscale.cli._app import app, console

__all__ = ["reduce_leads_cmd"]


@app.command("reduce-leads")
def reduce_leads_cmd(
    src: Path = typer.Argument(..., help="A CinC 2021 record (.hea) or a folder of them (searched recursively)."),
    dest: Path = typer.Argument(..., help="Output folder; the folder layout below SRC is kept."),
    leads: str = typer.Option(..., "--leads", help="Lead set to keep: 12, 6, 4, 3, 2 or a list such as I,II,V2."),
) -> None:
    """Write reduced-lead copies of CinC 2021 records like the challenge's own reduced-lead files.

    Each copy keeps the record's name and header, with only the kept leads' signal lines and a .mat holding
    only those rows (int16 values copied as stored, so the copy reads back exactly). Records that cannot be
    reduced are listed and the command exits 1.
    """
    from ecgscale.data.reduced import reduce_leads

    summary = reduce_leads(src, dest, leads)
    console.print(
        f"wrote {len(summary.written)} {summary.leads.tag}-lead record(s) ({', '.join(summary.leads.names)}) to {dest}",
        highlight=False,
    )
    for _path, message in summary.failed[:20]:
        console.print(f"[yellow]not reduced:[/] {message}", highlight=False, soft_wrap=True)
    if len(summary.failed) > 20:
        console.print(f"... and {len(summary.failed) - 20} more not reduced", highlight=False)
    if summary.failed:
        raise typer.Exit(1)
