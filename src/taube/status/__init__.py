"""Status and incident communication (docs/status.md).

Canaries measure the real path end to end (canary.py), per-minute aggregates and
the verdict rules turn them into component statuses (aggregates.py, verdict.py),
incidents open and close themselves from those (incidents.py, reports.py), and the
signed status document, its HTML page and Atom feed tell everyone (document.py,
page.py, feed.py, signing.py); webhooks tell other systems (webhooks.py).

This package file imports nothing, so that ``taube.status.signing`` (and the pure
renderers) can be used by clients without pulling in the server side.
"""
