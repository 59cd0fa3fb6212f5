"""``taube bench``: a load generator for Taube servers, and the bare relay it is compared with.

The public face is small: :func:`run` takes :class:`BenchOptions` and returns a
:class:`Report`; :func:`run_cli` is the ``taube bench`` command. Everything on
the wire goes through :mod:`taube.protocol` (frames are encoded and decoded by
the same code the server and the SDK use). The method, the workloads and how to
reproduce every published figure are in docs/performance.md.

Modules: ``options`` (what a run does), ``accounts`` (throwaway accounts),
``wire`` (pre-encoded masked frames), ``conn`` (one device connection),
``workloads`` (traffic shapes), ``worker`` (one load process), ``runner``
(the run's clock and the merge), ``histogram``, ``procfs`` (server CPU and
RSS), ``report``, ``relay`` (the bare baseline server) and ``suite``
(``make bench``).
"""

from __future__ import annotations

import argparse
import sys

from taube.bench.errors import BenchError
from taube.bench.options import BenchOptions, from_namespace
from taube.bench.report import Report, format_human
from taube.bench.runner import run, stderr_progress

__all__ = ["BenchError", "BenchOptions", "Report", "run", "run_cli"]


def run_cli(args: argparse.Namespace) -> int:
    """The ``taube bench`` command: 0 when every message arrived without errors, else 1.

    The summary goes to stdout; with ``--json`` it goes to stderr and stdout
    gets only the JSON object, as its last line.
    """
    options = from_namespace(args)
    report = run(options, progress=stderr_progress)
    human = format_human(report)
    if options.json:
        print(human, file=sys.stderr)
        print(report.to_json(), flush=True)
    else:
        print(human, flush=True)
    return 0 if report.lost == 0 and not report.errors else 1
