"""Scale-out: Ray Serve replicas and batch prediction (a local pool or Ray Data).

- :mod:`recog.scale.serve_options`: autoscaling options (flags or a YAML file) and the
  Serve config file that ``serve deploy`` takes to a cluster.
- :mod:`recog.scale.deployment`: one Ray Serve deployment per model, each replica running
  the same FastAPI app as ``recog serve`` (:func:`recog.serve.app.create_app`).
- :mod:`recog.scale.serve_run`: ``recog serve --ray`` on this machine or a cluster.
- :mod:`recog.scale.sources`, :mod:`recog.scale.shards`, :mod:`recog.scale.batch`:
  ``recog batch-predict``: inputs to resumable parquet shards, on a local pool or Ray Data.

Ray is optional (``pip install 'recog[ray]'``); nothing here imports it at import time.
"""
