"""``bamf evaluate``: the paper's Table 1 (or the NYU-D ground-truth scores), re-measured."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["evaluate_cli"]


def evaluate_cli(args: argparse.Namespace) -> int:
    """``bamf evaluate --pairs SET [--json OUT] [--save-fused DIR] [--weights DIR]``: print
    Table 1, optionally save the scores and bamf's fused images."""
    from bamf_lib.evaluation.table1 import default_methods, evaluate, pair_set
    from bamf_lib.evaluation.tables import format_table, paper_result
    from bamf_lib.files import atomic_write

    existing = getattr(args, "existing", None) or ("overwrite" if getattr(args, "force", False) else "refuse")
    overwrite = existing == "overwrite"
    path = getattr(args, "path", "fast")
    weights = getattr(args, "weights", None)
    swap = getattr(args, "swap_average", False)
    both = ", each pair scored in both orders (--swap-average)" if swap else ""
    json_out = Path(args.json_out) if args.json_out else None
    engine, scheduler = getattr(args, "engine", "local"), getattr(args, "scheduler", None)
    if scheduler and engine != "dask":
        raise ValueError("--scheduler names a Dask scheduler; add --engine dask")
    if engine == "dask" and args.pairs == "nyud40":
        raise ValueError("--engine dask scores the Table 1 pair sets; nyud40 runs with --engine local")
    if json_out is not None and json_out.exists() and not overwrite:
        raise FileExistsError(f"{json_out} exists; remove it, choose another --json path or pass --existing overwrite")
    if args.pairs == "nyud40":
        from bamf_lib.evaluation import nyud

        scores = nyud.evaluate_nyud(nyud.default_methods(weights, path, swap), progress=True)
        print(f"nyud40: fused images scored against the all-in-focus ground truth; bamf on the {path} path{both}\n")
        print(nyud.format_nyud(scores))
        if json_out is not None:
            with atomic_write(json_out, overwrite=overwrite) as tmp:
                tmp.write_text(json.dumps(scores, indent=1))
        return 0
    print(f"bamf and bamf-initial scored on the {path} path{both}\n")
    result = evaluate(
        pair_set(args.pairs),
        default_methods(weights, path, swap),
        save_fused=args.save_fused,
        existing=existing,
        label=args.pairs,
        engine=engine,
        scheduler=scheduler,
    )
    print(format_table(result))
    if len(result.common_pairs()) < len(result.pairs):
        print("\nThe same, averaged only over the pairs every method has:\n")
        print(format_table(result, means="common"))
    if args.pairs == "paper24":
        print("\nThe paper's Table 1 for comparison:\n")
        print(format_table(paper_result()))
    if json_out is not None:
        with atomic_write(json_out, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=1))
    return 0
