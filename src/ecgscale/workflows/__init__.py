"""Workflows: end-to-end pipelines that chain the library's steps (synth → cache → sweep → search → train →
report). ``ecgscale.workflows.demo`` is the one ``ecgscale demo`` runs; a workflow only composes the packages
below it, and the CLI is the only thing that imports a workflow."""
