"""The ``bamf`` command line: ``fuse``, ``metrics``, ``train``, ``evaluate``, ``reproduce``, ``data``.

``bamf fuse`` fuses one stack, or many in one process (``--batch DIR``, ``--list FILE``;
:mod:`bamf_lib.fusion.batch`): the networks load once, finished stacks are skipped unless
``--force``, a failing stack is reported at the end (exit status 2, or 1 for a bug) and the
others go on.  It never imports torch on the default ONNX Runtime path.

Each subcommand parses its arguments here and calls one library function; errors from
bad input are printed as one line on stderr with exit status 2 and nothing is written.
An unexpected error prints one line too (exit status 1), with a hint to rerun with
``--debug``, which shows the traceback.  SIGTERM ends a command the way Ctrl-C does, so
no temporary file is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import warnings

from bamf_lib.cli.data import cmd_data as _cmd_data
from bamf_lib.cli.evaluate import evaluate_cli
from bamf_lib.cli.fuse import cmd_fuse as _cmd_fuse
from bamf_lib.cli.fuse import one_line as _one_line

__all__ = ["main", "build_parser"]


def _cmd_metrics(args: argparse.Namespace) -> int:
    from bamf_lib.evaluation.metrics import all_metrics
    from bamf_lib.io import read_image

    images = [read_image(p, max_pixels=args.max_pixels) for p in (args.a, args.b, args.fused)]
    try:
        values = all_metrics(*images)
    except ValueError as exc:  # the library names them a, b and f
        raise ValueError(f"a={args.a} b={args.b} f={args.fused}: {exc}") from None
    if args.json:
        print(json.dumps(values))
    else:
        for name, value in values.items():
            print(f"{name:5s} {value:.6f}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bamf_lib.nets.recipe import train_profile

    train_profile(
        args.profile,
        net=args.net,
        out_dir=args.out,
        resume=not args.no_resume,
        device=args.device,
        progress=not args.quiet,
        time_budget=args.time_budget,
        stop_after=args.stop_after,
        resume_from=args.resume_from,
        overrides=dict(item.split("=", 1) for item in args.set),
    )
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from bamf_lib.book.reproduce import reproduce

    reproduce(profile=args.profile, book=not args.no_book, only=args.only, root=args.book)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bamf", description="Boundary-aware multi-focus image fusion.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "fuse",
        help="fuse two or more differently focused images into one all-in-focus image",
        description="Fuse one stack (SOURCES -o OUTPUT) or many in one process (--batch, --list).",
    )
    p.add_argument("sources", nargs="*", help="source images (two or more, same size)")
    p.add_argument(
        "-o",
        "--output",
        help="fused image to write (with --batch: the folder for the fused images, default the --batch folder)",
    )
    p.add_argument(
        "--batch",
        metavar="DIR",
        help="fuse every stack in DIR: each subfolder's images (in name "
        "order) are one stack, written to OUTDIR/<subfolder><suffix>",
    )
    p.add_argument(
        "--list",
        metavar="FILE",
        help="fuse the stacks listed in FILE, one 'a.jpg b.jpg -> out.png' per line (paths relative to FILE's folder)",
    )
    p.add_argument("--suffix", default=".png", help="format of --batch outputs (default .png)")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="with --batch or --list: stacks fused at once, each on its "
        "share of the cores (default: one per core, up to 4); stacks of over 1 MP fuse one at a time on "
        "all cores, which bounds the memory",
    )
    _engine_options(p, "stacks")
    p.add_argument(
        "--decision-map",
        help="also write the decision map here: the index of the chosen source, "
        "scaled to 0..255 (for a pair: 0 where the first source is taken, 255 where the second)",
    )
    p.add_argument("--path", choices=["fast", "reference"], default="fast")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--backend",
        choices=["auto", "onnx", "torch"],
        default="auto",
        help="what runs the networks: ONNX Runtime on the CPU (no PyTorch needed), PyTorch (CPU or "
        "GPU; pip install 'bamf[train]'), or auto: ONNX where it computes the same scores",
    )
    p.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="register the frames (each to its neighbour, OpenCV ECC, similarity; the output is cropped "
        "to their common area) before fusing; the default for more than two frames (--no-align: skip)",
    )
    p.add_argument(
        "--reference",
        type=int,
        default=0,
        metavar="N",
        help="with alignment: the frame (0 = first, -1 = last) whose geometry the output has",
    )
    p.add_argument(
        "--depth-map",
        metavar="FILE",
        help="also write the chosen frame's index per pixel here "
        "(8-bit gray, value = frame index) and a colour-coded preview beside it (FILE-preview.png)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="S",
        help="for more than two frames: decide on copies reduced by S (0 < S <= 1; 0.5 scores a quarter "
        "of the pixels, about twice as fast; the output keeps full size; benchmarks/STACKS.md measures the cost)",
    )
    _swap_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="print the alignment's residual error and timings")
    _weights_option(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing output files (never an input); "
        "without it, --batch and --list skip the stacks already fused",
    )
    _max_pixels_option(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fuse)

    p = sub.add_parser("metrics", help="print Q_MI, Q_G, Q_Y, Q_CB of a fused image")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("fused")
    p.add_argument("--json", action="store_true")
    _max_pixels_option(p)
    p.set_defaults(func=_cmd_metrics)

    p = sub.add_parser("train", help="train the initial or the boundary network on synthetic data")
    p.add_argument("--profile", default="quick")
    p.add_argument("--net", choices=["initial", "boundary"], default="initial")
    p.add_argument("--out", default="runs", help="folder for checkpoints, logs and weights")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--time-budget", type=float, help="seconds for synthesis + training; stops after an epoch")
    p.add_argument(
        "--stop-after",
        type=float,
        metavar="SECONDS",
        help="a campaign's run: stop after the last epoch that fits in SECONDS, keeping the schedule "
        "(the same command resumes it)",
    )
    p.add_argument(
        "--resume-from", metavar="CHECKPOINT", help="continue from this checkpoint (e.g. a campaign's committed one)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="replace a profile field, e.g. train.epochs=1 (repeatable)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="Table 1: score bamf and the published baselines on test pairs")
    p.add_argument(
        "--pairs",
        choices=["paper24", "survey30", "lytro20", "grayscale10", "nyud40"],
        default="paper24",
        help="test pairs; nyud40 scores against all-in-focus ground truth (PSNR, SSIM, decision accuracy)",
    )
    p.add_argument(
        "--path",
        choices=["fast", "reference"],
        default="fast",
        help="scoring path of bamf: the whole image at once, or the paper's patch per pixel (slow)",
    )
    p.add_argument("--json", dest="json_out", help="write per-pair and mean scores here")
    p.add_argument("--save-fused", help="folder for bamf's fused images")
    p.add_argument(
        "--existing",
        choices=["refuse", "skip", "overwrite"],
        default="refuse",
        help="what to do with --save-fused images (and a --json file) already there, e.g. from a run "
        "that failed: stop before any work (default), keep them, or replace them",
    )
    _swap_option(p)
    _weights_option(p)
    _engine_options(p, "pairs")
    p.set_defaults(func=evaluate_cli)

    p = sub.add_parser("reproduce", help="execute every notebook with papermill and build the HTML book")
    p.add_argument("--profile", choices=["quick", "cpu", "paper"], default="quick")
    p.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    p.add_argument("--only", nargs="*", help="run only notebooks whose names contain these strings")
    p.add_argument(
        "--book",
        metavar="DIR",
        help="the book's folder, a checkout holding _toc.yml and notebooks/ "
        "(default: the current folder or the nearest one above it)",
    )
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("data", help="download the book's data (hash-checked) or check a data folder")
    p.add_argument(
        "action",
        choices=["fetch", "check"],
        help="fetch: download what is missing into the cache (or --dir); check: verify a folder",
    )
    p.add_argument(
        "dir",
        nargs="?",
        help="folder to fill or check (default: the cache for fetch; BAMF_DATA_DIR, else the cache, for check)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="GROUP[,GROUP]",
        help="only these top-level folders, e.g. lytro,published (default: all but coco)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_data)

    for p in sub.choices.values():  # after the subcommand too, where users type it
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback of an unexpected error",
        )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    return parser


def _max_pixels_option(p: argparse.ArgumentParser) -> None:
    from bamf_lib.io import MAX_PIXELS

    def pixels(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of pixels: {text!r}") from None
        if not 1 <= value < 2**62:
            raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {text}")
        return int(value)

    p.add_argument(
        "--max-pixels",
        type=pixels,
        default=MAX_PIXELS,
        metavar="N",
        help=f"refuse an input image of more than N pixels, checked before it is decoded "
        f"(default {MAX_PIXELS:.0e}; e.g. 4e8)",
    )


def _engine_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help=f"where the {what} run: in this process (default) or on a Dask cluster, one task "
        f"per {what.rstrip('s')} (pip install 'bamf[dask]'); every worker must see the files at "
        f"the same paths",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: the scheduler of an existing cluster, e.g. tcp://host:8786 "
        "(default: a local cluster of a worker per core"
        + ("; --jobs N sets the workers)" if what == "stacks" else ")"),
    )


def _swap_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--swap-average",
        action="store_true",
        help="score every pair in both orders and average (beyond the paper: removes the networks' lean "
        "towards one order on regions without detail; twice the scoring time; ablation in campaign/README.md)",
    )


def _weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        metavar="DIR",
        help="use the initial and boundary networks in DIR (initial.safetensors and boundary.safetensors, "
        "or what `bamf train --out DIR` wrote) instead of the shipped ones; 'padded' names the shipped "
        "zero-padded ResNet-20 nets (GPU-trained; their fast path approximates the per-patch "
        "scores)",
    )


@contextlib.contextmanager
def _sigterm_unwinds() -> None:
    """Make SIGTERM raise SystemExit(143) in the main thread, so ``finally`` blocks (atomic
    writes' temporary files) run as on Ctrl-C; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "weights", None):
        from bamf_lib.runtime.locate import weights_folder

        if not weights_folder(args.weights).is_dir():
            print(
                f"bamf {args.command}: error: --weights {args.weights} is not a folder (nor a set shipped "
                f"in bamf_lib/weights)",
                file=sys.stderr,
            )
            return 2
    if not args.debug:  # Pillow's notes on damaged tags (it reads what it can) are not for users
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    try:
        with _sigterm_unwinds():
            return args.func(args)
    except KeyboardInterrupt as exc:
        print(f"bamf {args.command}: {exc or 'interrupted; nothing was written'}", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        # bad input (ValueError) and files (OSError: missing, existing, folders, permissions)
        # are the user's to fix; anything else is a bug
        if isinstance(exc, (ValueError, OSError)):
            print(f"bamf {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        print(
            f"bamf {args.command}: unexpected error: {type(exc).__name__}: {_one_line(exc)} "
            f"(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
