"""`data=tiny|demo|bench`: names of the embedded synthetic datasets, resolved to their generated data YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EMBEDDED = ("tiny", "demo", "bench")  # presets of `dydet.data.synthetic.make_dataset`


def is_embedded_name(data: Any) -> bool:
    """Return whether `data` names an embedded dataset (``tiny``, ``demo``, ``bench``, optionally with ``.yaml``).

    A file of that name in the current directory wins over the embedded dataset, as any local path would.
    """
    if not isinstance(data, (str, Path)):
        return False
    text = str(data).strip()
    name = text.removesuffix(".yaml").lower()
    return name in EMBEDDED and "/" not in text and "\\" not in text and not Path(text).exists()


def resolve_data(data: Any) -> Any:
    """Return the data YAML path of an embedded dataset name (generated offline on first use), else `data` unchanged.

    Args:
        data (Any): A `data=` argument: ``"tiny"``, ``"demo"``, ``"bench"`` (or ``"demo.yaml"``), or anything else.

    Returns:
        (Any): The absolute path of the embedded dataset's `data.yaml` as a string, or `data` as given.

    Examples:
        >>> resolve_data("demo")  # doctest: +SKIP
        '/home/me/.cache/dydet/datasets/synthetic-demo-.../data.yaml'
    """
    if not is_embedded_name(data):
        return data
    from dydet.data.synthetic import make_dataset

    return str(make_dataset(str(data).strip().removesuffix(".yaml").lower()))
