"""`data=tiny|demo|bench`: names of the embedded synthetic datasets, resolved to their generated data YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EMBEDDED = ("tiny", "demo", "bench")  # presets of `dydet.data.synthetic.make_dataset`


def embedded_name(data: Any) -> str | None:
    """Return the preset that `data` names (``tiny``, ``demo``, ``bench``, optionally with ``.yaml``), else None.

    A file of that name in the current directory wins over the embedded dataset, as any local path would.
    """
    if not isinstance(data, (str, Path)):
        return None
    text = str(data).strip()
    name = text.removesuffix(".yaml").lower()
    embedded = name in EMBEDDED and "/" not in text and "\\" not in text and not Path(text).exists()
    return name if embedded else None


def is_embedded_name(data: Any) -> bool:
    """Return whether `data` names an embedded dataset (see `embedded_name`)."""
    return embedded_name(data) is not None


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
    name = embedded_name(data)
    if name is None:
        return data
    from dydet.data.synthetic import make_dataset

    return str(make_dataset(name))
