"""bamf_lib: boundary-aware multi-focus image fusion (Ma et al., ICME 2019), stage by stage.

The folders are the architecture, and each one's ``__init__`` says what lives there.  The
ground floor (:mod:`bamf_lib.config`, :mod:`bamf_lib.io` and its helpers) is used by every
stage; ``data`` makes and fetches what the networks learn from and are tested on, ``nets`` holds
the torch networks and their training, ``runtime`` runs trained networks without torch,
``fusion`` turns score maps into a fused image, ``evaluation`` measures it, ``book`` draws the
companion's figures and ``cli`` is the ``bamf`` command.  Dependencies point only downwards:
cli -> evaluation -> fusion -> runtime/nets -> data -> ground floor.  The two functions here are
the public entry points for Python users.
"""

__version__ = "0.1.0"


def fuse(sources, **kwargs):
    """Fuse registered, differently focused sources; see :func:`bamf_lib.fusion.pipeline.fuse`."""
    from bamf_lib.fusion.pipeline import fuse as _fuse

    return _fuse(sources, **kwargs)


def load_pretrained(net: str = "initial", weights=None, **kwargs):
    """The shipped (or ``weights``' folder's) network, loaded once; see
    :func:`bamf_lib.nets.pretrained.load_pretrained`."""
    from bamf_lib.nets.pretrained import load_pretrained as _load

    return _load(net, weights, **kwargs)


__all__ = ["fuse", "load_pretrained", "__version__"]
