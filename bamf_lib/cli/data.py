"""``bamf data fetch | check``: download the book's data (hash-checked) or verify a data folder."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["cmd_data"]


def cmd_data(args: argparse.Namespace) -> int:
    from bamf_lib.data import download, registry

    only = [g for item in args.only or [] for g in item.split(",") if g]
    chosen = registry.select(only or None)
    if args.action == "fetch":
        root = download.fetch_many(chosen, args.dir, progress=not args.quiet).resolve()
        how = (
            f"use them with BAMF_DATA_DIR={root}"
            if args.dir
            else "the download cache, which bamf reads when BAMF_DATA_DIR is unset"
        )
        print(f"{len(chosen)} files hash-checked in {root}: {how}")
        return 0
    root = Path(args.dir) if args.dir else _data_folder()
    missing, wrong = download.check(root, chosen)
    for name in missing:
        print(f"missing {name}")
    for name in wrong:
        print(f"WRONG   {name} (hash differs from the registry: delete it and fetch again)")
    print(
        f"{root}: {len(chosen) - len(missing) - len(wrong)} of {len(chosen)} files verified, "
        f"{len(missing)} missing, {len(wrong)} wrong"
    )
    return 1 if missing or wrong else 0


def _data_folder() -> Path:
    """The folder bamf reads data from: BAMF_DATA_DIR when set, else the download cache."""
    from bamf_lib.data.datasets import data_dir
    from bamf_lib.data.download import cache_dir

    return data_dir() or cache_dir()
