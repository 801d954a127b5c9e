"""Fusion: from two or more differently focused images to one, through scorers.

The pipeline (:mod:`~bamf_lib.fusion.pipeline`) aligns the sources (:mod:`~bamf_lib.fusion.align`)
and fuses a pair with the paper's method (:mod:`~bamf_lib.fusion.pair`): it scores them with the
initial network, finds and re-scores the focused/defocused boundary with the boundary network
(:mod:`~bamf_lib.fusion.boundary`), post-processes the score map into a decision map
(:mod:`~bamf_lib.fusion.postprocess`) and selects pixels.  A stack of more frames is registered
frame to neighbour (:mod:`~bamf_lib.fusion.stack_align`) and decided jointly
(:mod:`~bamf_lib.fusion.stack`).  The networks arrive as
:class:`~bamf_lib.runtime.scorer.Scorer` objects, resolved once by
:mod:`~bamf_lib.fusion.scorers` (from ``fuse()`` or the CLI); nothing here depends on which
backend runs them.  Batches of stacks (:mod:`~bamf_lib.fusion.batch`) and the classical
baselines the paper compares with (:mod:`~bamf_lib.fusion.baselines`) live here too.
"""
