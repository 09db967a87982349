"""Fuzzing the readers (issue 7).

- ``targets.py``: one ``bytes -> None`` target per reader, with its allowed errors and the result invariants;
- ``atheris_main.py``: the libFuzzer entry point, ``python -m reliability.fuzz.atheris_main TARGET [args]``;
- ``runner.py``: a bounded run of one target from a scratch copy of its corpus (used by CI and the scenarios);
- ``scenarios.py``: ``SCENARIOS`` for ``python -m reliability.run`` (``iterations`` = seconds of fuzzing);
- ``corpus.py`` and ``corpus/<target>/``: seed specimens plus coverage-reaching inputs found by long runs;
- ``crashers/<target>/``: every input that once broke a reader, each with a one-line ``.txt`` note.
"""
