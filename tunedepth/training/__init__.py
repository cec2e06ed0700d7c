"""Applications, backbones and the training core of tunedepth, plus the thin Ray Tune adapter.

The core (``engine``, ``models``, ``apps``, ``data``, ``metrics``, ``schedules``) knows nothing about Ray;
``tunedepth.hpo.trainable`` is the only module that talks to Tune.
"""
