"""Hyperparameter tuning of a dynamic model: Ultralytics' evolution, each trial a real dydet stage-1 training."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from torch import nn
from ultralytics.engine.tuner import Tuner
from ultralytics.utils import LOGGER, YAML
from ultralytics.utils.plotting import plot_tune_results


def _atomic_copy(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` through a temporary file in the destination folder."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


class DynamicTuner(Tuner):
    """Ultralytics' `Tuner` (mutation, search space, `tune_results.ndjson`, plots) training dydet models in process.

    Ultralytics' own loop trains each trial through the `yolo` command, which rebuilds a static YOLO from the dynamic
    checkpoint; here every trial is a `DynamicTrainer` run (stage 1: both routes, the easy-plus-hard loss), seeded
    like `DynamicYOLO.train` (the given weights, or a fresh model from the YAML), and its fitness is the trainer's
    best fitness (mean of both routes' fitness). Trials go to `<tune_dir>/trial<N>`; the best trial's weights are
    copied to `<tune_dir>/weights` and its hyperparameters to `best_hyperparameters.yaml`.

    Attributes:
        weights (nn.Module | None): Model whose weights seed every trial (None: each trial starts from the YAML).
    """

    def __init__(
        self,
        args: dict[str, Any],
        model: nn.Module,
        trainer: type,
        weights: nn.Module | None = None,
        _callbacks=None,
    ):
        """Create the tuner.

        Args:
            args (dict): Training arguments (Ultralytics keys only), with `space` optionally giving the search space.
            model (nn.Module): The dynamic model; its YAML builds every trial's model.
            trainer (type): The family's stage-1 trainer class, which trains every trial.
            weights (nn.Module, optional): Weights to start every trial from.
            _callbacks (dict, optional): Callbacks passed to every trial's trainer.
        """
        super().__init__(args, _callbacks, model=model)
        self.trainer_class, self.weights = trainer, weights

    def _save_local_result(self, result: dict) -> None:
        """Append one trial's record to `tune_results.ndjson`, rewriting the file atomically."""
        lines = self.tune_file.read_text(encoding="utf-8") if self.tune_file.exists() else ""
        lines += json.dumps(result, default=self._json_default) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.tune_dir, prefix=".tune_results.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(lines)
        os.replace(tmp, self.tune_file)

    def _train_trial(self, i: int, hyp: dict[str, float]) -> tuple[float, dict[str, Any], Path]:
        """Train trial `i` with hyperparameters `hyp`; return its fitness, final metrics and run folder."""
        args = {k: v for k, v in vars(self.args).items() if k not in {"cfg", "save_dir"}}
        args.update(hyp, project=str(self.tune_dir), name=f"trial{i}", exist_ok=True, resume=False)
        trainer = self.trainer_class(overrides=args, _callbacks=self.callbacks)
        trainer.model = trainer.get_model(cfg=self.model.yaml, weights=self.weights)
        trainer.train()
        fitness = float(trainer.best_fitness or 0.0)
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        return fitness, {**metrics, "fitness": fitness}, Path(trainer.save_dir)

    def __call__(self, iterations: int = 10, cleanup: bool = True) -> dict[str, Any]:
        """Run `iterations` trials (resuming an interrupted `tune_dir`), keeping the best trial's weights.

        Args:
            iterations (int): Total number of trials.
            cleanup (bool): Delete the run folders of trials that are not the best so far.

        Returns:
            (dict): The best trial's record: `iteration`, `fitness`, `hyperparameters`, `datasets` (metrics).
        """
        t0 = time.time()
        (self.tune_dir / "weights").mkdir(parents=True, exist_ok=True)
        data = str(self.args.data)
        start = len(self._load_local_results())
        best_dir = None
        for i in range(start + 1, iterations + 1):
            hyp = self._mutate()
            LOGGER.info(f"{self.prefix}Trial {i}/{iterations} (dydet stage 1) with hyperparameters: {hyp}")
            fitness, metrics, save_dir = self._train_trial(i, hyp)
            self._save_local_result(self._result_record(i, fitness, hyp, {data: metrics}, {data: str(save_dir)}))
            results = self._load_local_results()
            x = self._local_results_to_array(results)
            best = results[self._best_result_index(results, x[:, 0])]
            if best["iteration"] == i:
                for ckpt in (save_dir / "weights").glob("*.pt"):
                    _atomic_copy(ckpt, self.tune_dir / "weights" / ckpt.name)
                if cleanup and best_dir is not None:
                    shutil.rmtree(best_dir, ignore_errors=True)
                best_dir = save_dir
            elif cleanup:
                shutil.rmtree(save_dir, ignore_errors=True)
            plot_tune_results(str(self.tune_file))
            self._save_best(best, x[results.index(best), 1:], i, iterations, time.time() - t0)
        results = self._load_local_results()
        x = self._local_results_to_array(results)
        return results[self._best_result_index(results, x[:, 0])] if results else {}

    def _save_best(self, best: dict, values, done: int, iterations: int, seconds: float) -> None:
        """Log the best trial so far and write `best_hyperparameters.yaml` atomically."""
        from ultralytics.cfg import CFG_INT_KEYS

        header = (
            f"{done}/{iterations} trials done ({seconds:.1f}s), results in {self.tune_dir}\n"
            f"Best fitness={best['fitness']} at trial {best['iteration']}; its weights: {self.tune_dir / 'weights'}"
        )
        LOGGER.info(f"{self.prefix}{header}")
        hyp = {k: int(v) if k in CFG_INT_KEYS else float(v) for k, v in zip(self.space, values)}
        fd, tmp = tempfile.mkstemp(dir=self.tune_dir, prefix=".best_hyperparameters.", suffix=".yaml")
        os.close(fd)
        YAML.save(Path(tmp), data=hyp, header="".join(f"# {line}\n" for line in header.splitlines()))
        os.replace(tmp, self.tune_dir / "best_hyperparameters.yaml")
