"""``python -m dydet.data.synthetic``: generate (or reuse) a synthetic dataset from the command line."""

from __future__ import annotations

import argparse

from dydet.data.synthetic.api import make_dataset
from dydet.data.synthetic.presets import PRESETS


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate (or reuse) a dydet synthetic detection dataset.")
    parser.add_argument("--name", default="demo", help=f"preset: {', '.join(PRESETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="cache root (default: $DYDET_DATASETS_DIR or ~/.cache/dydet)")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-val", type=int, default=None)
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument("--quiet", action="store_true")
    a = parser.parse_args(argv)
    try:
        path = make_dataset(a.name, a.root, a.seed, a.n_train, a.n_val, a.imgsz, a.force, not a.quiet)
    except ValueError as e:
        parser.error(str(e))
    print(path)


if __name__ == "__main__":
    _main()
