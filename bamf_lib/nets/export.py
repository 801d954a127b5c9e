"""Export a dense-capable network's score map to ONNX, for :mod:`bamf_lib.runtime.onnx` (needs torch).

The graph is exactly what :mod:`bamf_lib.nets.scoring`'s fast path computes on one tile of a
padding-free, stride-1 network: the features of its :func:`~bamf_lib.nets.inference.inference_copy`
(BatchNorm folded), the head at every position with the logit-gap row
(:meth:`~bamf_lib.nets.models.FocusResNet.pooled_logits`) and a sigmoid.  Input ``pair``
(1, 2, H, W), float32 gray in [0, 1], with dynamic H and W; output ``score``
(1, 1, H - P + 1, W - P + 1), the score of every patch.  Every export is checked: ONNX
Runtime's scores of a random pair must equal the torch path's to 1e-5, or nothing is written.

Run ``python -m bamf_lib.nets.export [FOLDER ...]`` (default: the shipped ``bamf_lib/weights``)
after replacing a folder's weights: it writes ``NAME.onnx`` beside each dense-capable
``NAME.safetensors``, recording the weights' SHA-256 in the graph's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from bamf_lib.files import atomic_write
from bamf_lib.nets.inference import inference_copy
from bamf_lib.nets.models import FocusResNet
from bamf_lib.nets.scoring import _pooled_logit_gap, score_map
from bamf_lib.nets.weightfile import load_weights
from bamf_lib.runtime.locate import WEIGHTS_DIR
from bamf_lib.runtime.onnx import SOURCE_KEY, OnnxScorer, onnx_path

__all__ = ["export_onnx", "export_weights", "main", "TOLERANCE"]

#: largest |ONNX - torch| score difference an export may have
TOLERANCE = 1e-5
_OPSET = 17


class _DenseScore(torch.nn.Module):
    """sigmoid(logit gap) of every patch of a (1, 2, H, W) pair: the fast path of one tile.

    Written for ONNX Runtime's blocked (NCHWc) convolutions: every 3x3 convolution pads by its
    dilation ("same") instead of none, so no residual block crops its shortcut, and the one crop
    of :attr:`shrink` pixels (what the padding-free convolutions would have taken off each side)
    comes at the very end, on the head's 1-channel output.  An output pixel whose receptive field
    lies inside the input never sees the zero padding, so the cropped map is the padding-free
    network's.  The shape exists for speed: the per-block crops and the layout changes around
    them cost ONNX Runtime more than the borders this adds (``benchmarks/bench_cli.py`` and the
    model card have the figures).
    """

    def __init__(self, model: FocusResNet) -> None:
        super().__init__()
        self.model = inference_copy(model)
        self.shrink = 0
        for conv in [self.model.stem[0], *(c for block in self.model.blocks for c in block.main_convs)]:
            if conv.kernel_size[0] > 1:
                conv.padding = (conv.dilation[0] * (conv.kernel_size[0] // 2),) * 2
                self.shrink += conv.padding[0]
        for block in self.model.blocks:
            block.valid = False  # the shortcut sees all of x, which now has the output's size

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        # the head is linear, so it runs on the uncropped features and the crop is of its
        # 1-channel output (no crop of the 16-channel features and no layout change around it)
        gap = _pooled_logit_gap(self.model, self.model.features(pair))
        r = self.shrink
        return torch.sigmoid(gap[..., r : gap.shape[-2] - r, r : gap.shape[-1] - r])


def export_onnx(model: FocusResNet, path: str | Path, *, source_sha256: str = "", check: bool = True) -> Path:
    """Write ``model``'s dense score map as an ONNX graph at ``path`` (atomically).

    Parameters
    ----------
    model : FocusResNet
        A dense-capable network (``model.dense_capable``).
    path : path-like
        Where to write the ``.onnx`` file (replaced if it exists).
    source_sha256 : str
        SHA-256 of the weights file, stored under :data:`~bamf_lib.runtime.onnx.SOURCE_KEY`.
    check : bool
        Compare ONNX Runtime's scores with :func:`bamf_lib.nets.scoring.score_map` on a random
        75 x 90 pair first; a difference over :data:`TOLERANCE` raises ``ValueError``.

    Returns
    -------
    Path
    """
    import onnx

    if not getattr(model, "dense_capable", False):
        raise ValueError("only a padding-free, stride-1 network (dense_capable) has an exact whole-image ONNX form")
    model = model.cpu().eval()
    p = model.config.patch_size
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants that are constant
        graph = _DenseScore(model).eval()
        example = torch.rand(1, 2, p + 17, p + 30, generator=torch.Generator().manual_seed(0))
        path = Path(path)
        with atomic_write(path, overwrite=True) as tmp:
            torch.onnx.export(
                graph,
                (example,),
                str(tmp),
                input_names=["pair"],
                output_names=["score"],
                dynamic_axes={"pair": {2: "height", 3: "width"}, "score": {2: "rows", 3: "cols"}},
                opset_version=_OPSET,
                dynamo=False,
            )
            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, {SOURCE_KEY: source_sha256, "bamf.patch_size": str(p)})
            onnx.save(proto, str(tmp))
            if check:
                _check_export(model, tmp)
    return path


def _check_export(model: FocusResNet, path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.random((75, 90), dtype=np.float32) for _ in range(2))
    net = OnnxScorer(path, model.config, {}, path)
    gap = float(np.abs(net.score_map(a, b) - score_map(model, a, b, device="cpu")).max())
    if not gap <= TOLERANCE:
        raise ValueError(f"the ONNX export differs from the torch scores by {gap:.2e} (> {TOLERANCE:.0e}); not written")


def export_weights(weights_file: str | Path, out: str | Path | None = None) -> Path:
    """Export the network in ``weights_file`` to ``out`` (default: beside it, ``NAME.onnx``)."""
    weights_file = Path(weights_file)
    sha = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    return export_onnx(load_weights(weights_file), out or onnx_path(weights_file), source_sha256=sha)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bamf_lib.nets.export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders",
        nargs="*",
        default=[str(WEIGHTS_DIR)],
        help="folders of .safetensors weights (default: the shipped bamf_lib/weights)",
    )
    args = parser.parse_args(argv)
    from bamf_lib.runtime.header import header_info

    for folder in map(Path, args.folders):
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            print(f"{folder}: no .safetensors files", file=sys.stderr)
            return 2
        for file in files:
            if not header_info(file)[0].dense_capable:
                print(f"skipped {file}: not dense-capable (runs on the torch path)")
                continue
            print(f"wrote {export_weights(file)} (checked against torch to {TOLERANCE:.0e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
