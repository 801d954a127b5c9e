"""Data: everything the networks learn from and are tested on, and where it comes from.

The registry (``registry.txt``, :mod:`~bamf_lib.data.registry`) gives every external file a
commit-pinned URL and a SHA-256; :mod:`~bamf_lib.data.download` fetches and checks them and
:mod:`~bamf_lib.data.datasets` hands out the named test and training sets; the data environment
variables are read in :mod:`~bamf_lib.data.locations` alone.  The paper's training-data
synthesis (section 3.1) lives here too: foreground and background sources
(:mod:`~bamf_lib.data.sources`), the blur model (:mod:`~bamf_lib.data.defocus`), pairs and labels
(:mod:`~bamf_lib.data.synthesis`, :mod:`~bamf_lib.data.patches`).  Nothing here imports torch or
knows about networks.
"""
