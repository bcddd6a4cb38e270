"""``python scripts/benchkit [ARGS]`` (what ``scripts/bench`` runs), or ``python -m benchkit`` with
scripts/ on the path. The run starts its helper servers the same way, with a first argument of
their own: ``--serve-paced-sse EVENTS INTERVAL`` (the paced SSE fake), ``--serve-floor PORT``
(the server floor) and ``--serve-otlp-sink PORT`` (``--tracing``'s span sink); those import only
what they serve with."""

import sys
from pathlib import Path

# scripts/ first on the path, so ``benchkit`` imports as a package; it replaces the package's own
# directory (which running it as a directory puts there), whose module names would shadow others.
sys.path[0] = str(Path(__file__).resolve().parent.parent)


def serve_helper(argv: list[str]) -> bool:
    """Run the helper server ``argv`` names, if it names one (until it is stopped)."""
    if argv[:1] == ["--serve-paced-sse"]:
        from benchkit.common import run_loop
        from benchkit.paced_fake import serve_paced_sse

        run_loop(serve_paced_sse(int(argv[1]), float(argv[2])))
        return True
    if argv[:1] == ["--serve-floor"]:
        from benchkit.floor_server import main as serve_floor

        serve_floor(int(argv[1]))
        return True
    if argv[:1] == ["--serve-otlp-sink"]:
        from benchkit.otlp_sink import serve_sink

        serve_sink(int(argv[1]))
        return True
    return False


if __name__ == "__main__":
    if serve_helper(sys.argv[1:]):
        sys.exit(0)
    from benchkit.cli import main

    sys.exit(main())
