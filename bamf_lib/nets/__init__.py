"""Networks (PyTorch): the paper's 2-channel ResNet, its training, and its weight files.

:mod:`~bamf_lib.nets.models` builds the network; :mod:`~bamf_lib.nets.training`,
:mod:`~bamf_lib.nets.recipe` and :mod:`~bamf_lib.nets.checkpoint` train it from a profile;
:mod:`~bamf_lib.nets.weightfile` writes and reads its safetensors files and
:mod:`~bamf_lib.nets.pretrained` loads the shipped ones.  Scoring with torch (the paper's
patch-per-pixel reference path and the whole-image paths, :mod:`~bamf_lib.nets.scoring`) is
offered to fusion as a :class:`~bamf_lib.runtime.scorer.Scorer` by
:class:`~bamf_lib.nets.scorer.TorchScorer`; :mod:`~bamf_lib.nets.export` writes the ONNX graphs
the torch-free runtime runs.  Every module here may import torch; this ``__init__`` does not,
so importing a sibling package never pulls it in.
"""
