"""One router per domain; :func:`recog.serve.app.create_app` includes them all.

- :mod:`~recog.serve.routers.models`: ``/v1/models`` (list, get, predict, reload).
- :mod:`~recog.serve.routers.faces`: ``/v1/faces:*`` and ``/v1/collections`` (face recognition).
- :mod:`~recog.serve.routers.ops`: ``/healthz``, ``/readyz``, ``/metrics``.
- :mod:`~recog.serve.routers.web`: the web page at ``/`` (its files are under ``/static``).
"""
