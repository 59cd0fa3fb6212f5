"""The ``taube`` command line: a thin shell over the client SDK (and ``serve`` for the server)."""
