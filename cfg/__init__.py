"""dydet's shipped configuration: model YAMLs (`models/`) and dataset YAMLs (`datasets/`)."""

from pathlib import Path

CFG_DIR = Path(__file__).resolve().parent
MODELS_DIR = CFG_DIR / "models"
DATASETS_DIR = CFG_DIR / "datasets"


def dydet_arg_names() -> tuple[str, ...]:
    """Return the names of dydet's own arguments (`default.yaml`), which are never passed on to Ultralytics."""
    import yaml

    return tuple(yaml.safe_load((CFG_DIR / "default.yaml").read_text()) or {})
