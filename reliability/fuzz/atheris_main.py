"""libFuzzer entry point: ``python -m reliability.fuzz.atheris_main TARGET [libFuzzer args]``.

The ecgscale readers and wfdb are imported under ``atheris.instrument_imports`` so coverage guides the
mutations through their Python branches. Any exception a target does not allow is a crash (atheris prints the
traceback and writes the input to ``-artifact_prefix``).
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> None:
    import atheris

    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.stderr.write("usage: python -m reliability.fuzz.atheris_main TARGET [libFuzzer args]\n")
        raise SystemExit(2)
    name = argv.pop(1)
    # The readers log a warning per refused unsafe path; at tens of thousands of inputs a second that is noise
    # that slows the fuzzer and floods its output (the log lines are tested in tests/reliability).
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=["ecgscale", "wfdb", "reliability.fuzz"]):
        from reliability.fuzz import targets
    if name not in targets.TARGETS:
        sys.stderr.write(f"unknown target {name!r}; choose one of {sorted(targets.TARGETS)}\n")
        raise SystemExit(2)

    def one_input(data: bytes) -> None:
        targets.run_target(name, data)

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
