"""Runtime: trained networks as scorers, without PyTorch.

A :class:`~bamf_lib.runtime.scorer.Scorer` is what fusion sees of a network: it scores a pair
(or a masked region of it) and says which network it is (name, weights' SHA-256).  This package
defines that protocol, implements it on ONNX Runtime (:mod:`~bamf_lib.runtime.onnx`), reads
weight-file headers and finds the shipped weight sets (:mod:`~bamf_lib.runtime.header`,
:mod:`~bamf_lib.runtime.locate`) and chooses the backend (:mod:`~bamf_lib.runtime.backend`).
It never imports torch or the exporter, so ``bamf fuse`` runs from a plain ``pip install``;
the torch implementation lives with the networks (:mod:`bamf_lib.nets.scorer`).
"""
