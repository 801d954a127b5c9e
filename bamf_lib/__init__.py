"""bamf_lib: boundary-aware multi-focus image fusion (Ma et al., ICME 2019), stage by stage.

The main job reads top to bottom:
``io -> scoring (initial net) -> boundary -> postprocess -> fusion -> io``;
training reads ``datasets -> synthesis -> models/training -> weights``.
"""

__version__ = "0.1.0"


def fuse(sources, **kwargs):
    """Fuse registered, differently focused sources; see :func:`bamf_lib.fusion.fuse`."""
    from bamf_lib.fusion import fuse as _fuse

    return _fuse(sources, **kwargs)


def load_pretrained(net: str = "initial", weights=None, **kwargs):
    """The shipped (or ``weights``' folder's) network, loaded once; see :func:`bamf_lib.weights.load_pretrained`."""
    from bamf_lib.weights import load_pretrained as _load

    return _load(net, weights, **kwargs)


__all__ = ["fuse", "load_pretrained", "__version__"]
