"""dydet's shipped configuration: model YAMLs (`models/`) and dataset YAMLs (`datasets/`)."""

from pathlib import Path

CFG_DIR = Path(__file__).resolve().parent
MODELS_DIR = CFG_DIR / "models"
DATASETS_DIR = CFG_DIR / "datasets"
