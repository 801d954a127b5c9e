"""Evaluation: how good a fusion is, measured as the paper and its successors measure it.

The fusion metrics (:mod:`~bamf_lib.evaluation.metrics`, Q_MI, Q_G, Q_Y, Q_CB), the paper's
Table 1 re-measured on the Lytro and grayscale pairs (:mod:`~bamf_lib.evaluation.table1`,
summarised by :mod:`~bamf_lib.evaluation.summary` and printed by
:mod:`~bamf_lib.evaluation.tables`, with the survey's published scores from
:mod:`~bamf_lib.evaluation.published`), and scores against known answers: synthetic pairs with a
true decision map (:mod:`~bamf_lib.evaluation.groundtruth`) and the NYU-D pairs with an
all-in-focus image (:mod:`~bamf_lib.evaluation.nyud`).  It calls fusion; fusion never calls it.
"""
