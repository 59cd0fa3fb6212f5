"""``python -m taube.cli`` runs the same program as the ``taube`` command."""

from taube.cli.main import main

main()
