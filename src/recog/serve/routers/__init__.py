"""One router per domain; :func:`recog.serve.app.create_app` includes those named in :data:`recog.serve.app.ROUTERS`.

- :mod:`~recog.serve.routers.models`: ``/v1/models`` (list, get, predict, embed, reload).
- :mod:`~recog.serve.routers.faces`: ``/v1/faces:*`` and ``/v1/collections`` (face recognition; a key always).
- :mod:`~recog.serve.routers.ops`: ``/healthz``, ``/readyz``, ``/metrics``.
- :mod:`~recog.serve.routers.docs`: ``/docs`` (Swagger UI from installed files, no CDN).
- :mod:`~recog.serve.routers.web`: the web page at ``/`` (its files are under ``/static``).

A new domain: a module here with a ``router``, and its name in ``ROUTERS``. Routes that
read take ``Depends(require_key)``; routes that change stored data take
``Depends(require_write_key)`` (:mod:`recog.serve.deps`); images come through
:func:`recog.serve.inputs.read_images` and are decoded in the app's decode processes
(:func:`recog.serve.inputs.decode_uploads`), never in a thread.
"""
