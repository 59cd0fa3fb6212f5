"""``python -m taube.server``: run a node without the client CLI (used by the tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from taube.server.app import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taube.server", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--store")
    parser.add_argument("--bus")
    parser.add_argument("--node")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    return serve(
        args.config,
        host=args.host,
        port=args.port,
        data_dir=args.data,
        store=args.store,
        bus=args.bus,
        node=args.node,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


if __name__ == "__main__":
    sys.exit(main())
