"""Operations: out-of-distribution scores, the prediction log, drift, feedback, retrain and compare.

* :mod:`~recog.monitor.reference` — what a classifier saw at training time, stored in ``recog.json``
  under ``"reference"`` (logit statistics of the validation split, confidence and class
  distributions, input statistics of a sample of training images).
* :mod:`~recog.monitor.ood` — the ``ood`` field of every classification result.
* :mod:`~recog.monitor.threshold` — ``recog ood threshold``: the ``unknown`` threshold chosen on
  held-out data plus a stated OOD set.
* :mod:`~recog.monitor.log` — the opt-in SQLite prediction log of the service.
* :mod:`~recog.monitor.drift` / :mod:`~recog.monitor.report` — ``recog monitor``.
* :mod:`~recog.monitor.feedback` — true labels for logged predictions, export for labelling.
* :mod:`~recog.monitor.compare` — ``recog compare`` (McNemar) and the promotion rule.
"""
