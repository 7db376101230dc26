"""What one benchmark run measured: rows, ratios against their references, tables, files and the plot."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER

from dydet.utils.checkpoint import atomic_write_bytes, write_error

SCALES = ("n", "s", "m", "l", "x")


EASY, HARD, ROUTED_EASY = "easy route", "hard route", "routed all-easy"


# What a ratio would be if the method cost exactly what it should: the easy route is the base model, the router
# costs nothing, the dynamic model costs the linear mix of its routes. Ratios computed from other figures of the
# same run (hard / easy: their GFLOPs ratio; throughput: that of the linear mix) get their reference in `_ratios`.
REFERENCES: dict[str, float] = {
    "easy/base bs1": 1.0,
    "easy/base batch": 1.0,
    "easy/base gflops": 1.0,
    "router bs1": 1.0,
    "router batch": 1.0,
    "dyn/mix bs1": 1.0,
    "dyn/mix batch": 1.0,
}


# ------------------------------------------------------------------------------------------------------------ results
@dataclass
class BenchmarkResult:
    """Everything one `benchmark_speed` run measured.

    Attributes:
        meta (dict): Model, baselines, device, precision, image size, batch, sequence length, repetitions, threads.
        rows (list[dict]): One row per (mode, candidate): `mode` ('eager' | 'graph'), `name`, `kind` ('route',
            'routed', 'static', 'dynamic'), `gflops`, `bs1_ms` (per image), `batch_ms` (per batch), `batch_img_s`,
            and for dynamic rows `hard_ratio` (asked), `p_bs1` / `p_batch` (achieved), `threshold_bs1` /
            `threshold_batch`, `mix_bs1_ms` / `mix_batch_ms` (linear mix of the forced routes at the achieved
            ratio) and `dyn_over_mix_bs1` / `dyn_over_mix_batch`.
        ratios (list[dict]): `mode`, `key`, `name`, `value`, and `reference` (None where there is none): the value
            the ratio would have if the routes cost exactly what the method says (see `REFERENCES`).
        files (dict[str, Path]): Files written by `save`.
    """

    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    ratios: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)

    def row(self, name: str, mode: str = "eager") -> dict[str, Any]:
        """Return the row of candidate `name` (e.g. 'easy route', 'yolo11n', 'dynamic p=0.50') in `mode`."""
        for r in self.rows:
            if r["name"] == name and r["mode"] == mode:
                return r
        raise KeyError(f"no row {name!r} in mode {mode!r}; rows: {sorted({r['name'] for r in self.rows})}")

    def ratio(self, name: str, mode: str = "eager") -> float:
        """Return the value of the ratio called `name` in `mode`."""
        for r in self.ratios:
            if r["name"] == name and r["mode"] == mode:
                return r["value"]
        raise KeyError(f"no ratio {name!r} in mode {mode!r}")

    @property
    def modes(self) -> list[str]:
        """Return the timing modes measured, in order ('eager', then 'graph' on CUDA)."""
        return list(dict.fromkeys(r["mode"] for r in self.rows))

    @property
    def deployed_mode(self) -> str:
        """Return the mode whose figures to read as the deployed cost: 'graph' when measured (CUDA), else 'eager'."""
        return "graph" if "graph" in self.modes else "eager"

    def _header(self) -> str:
        m = self.meta
        return (
            f"{m['model']} vs {', '.join(m['baselines']) or 'no baselines'} on {m['device_name']} ({m['precision']}, "
            f"{m['imgsz']} px, {m['reps']} interleaved reps; batch 1: mean over {m['seq']} images; "
            f"batch {m['batch']}; torch threads {m['threads']}"
            + (f"; load average {m['load_avg']:.1f} at start" if m.get("load_avg") is not None else "")
            + ")"
        )

    def _table_rows(self) -> tuple[list[str], list[list[str]]]:
        head = ["mode", "candidate", "GFLOPs", "bs1 ms/img", f"bs{self.meta['batch']} ms", "img/s", "p (bs1/batch)"]
        head += ["mix bs1 ms", "dyn/mix bs1", "dyn/mix batch"]
        out = []
        for r in self.rows:
            dyn = r["kind"] == "dynamic"
            out.append(
                [
                    r["mode"],
                    r["name"],
                    f"{r['gflops']:.3f}",
                    f"{r['bs1_ms']:.2f}",
                    f"{r['batch_ms']:.2f}",
                    f"{r['batch_img_s']:.1f}",
                    f"{r['p_bs1']:.2f}/{r['p_batch']:.2f}" if dyn else "",
                    f"{r['mix_bs1_ms']:.2f}" if dyn else "",
                    f"{r['dyn_over_mix_bs1']:.3f}" if dyn else "",
                    f"{r['dyn_over_mix_batch']:.3f}" if dyn else "",
                ]
            )
        return head, out

    def _ratio_rows(self) -> list[list[str]]:
        out = []
        for r in self.ratios:
            reference = "" if r.get("reference") is None else f"{r['reference']:.3f}"
            out.append([r["mode"], r["name"], f"{r['value']:.3f}", reference])
        return out

    def table(self) -> str:
        """Return the results as aligned plain text (header, candidates, ratios)."""

        def fmt(rows: list[list[str]]) -> list[str]:
            widths = [max(len(c) for c in col) for col in zip(*rows)]
            return [
                "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
            ]

        head, rows = self._table_rows()
        ratios = [["mode", "ratio", "value", "reference"], *self._ratio_rows()]
        return "\n".join([self._header(), "", *fmt([head, *rows]), "", *fmt(ratios)])

    def markdown(self) -> str:
        """Return the results as Markdown: a header line, the candidates table and the ratios table."""

        def md(head: list[str], rows: list[list[str]]) -> list[str]:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            return lines + ["| " + " | ".join(r) + " |" for r in rows]

        head, rows = self._table_rows()
        ratios = md(["mode", "ratio", "value", "reference"], self._ratio_rows())
        cmd = self.meta.get("command")
        return "\n".join(
            [self._header() + ("" if not cmd else f"\n\nCommand: `{cmd}`"), "", *md(head, rows), "", *ratios]
        )

    def save(self, save_dir: str | Path) -> dict[str, Path]:
        """Write `speed.csv`, `speed.md` and `speed.png` into `save_dir` (atomically) and return their paths.

        A folder that cannot hold them (full disk, read-only) raises a one-line `WriteError`.
        """
        save_dir = Path(save_dir)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        csv_path, md_path, png_path = save_dir / "speed.csv", save_dir / "speed.md", save_dir / "speed.png"
        atomic_write_bytes(csv_path, table.getvalue().encode())
        atomic_write_bytes(md_path, (self.markdown() + "\n").encode())
        try:
            plot_speed(self, png_path)
        except OSError as e:
            png_path.unlink(missing_ok=True)
            raise write_error(png_path, e) from e
        self.files = {"csv": csv_path, "md": md_path, "png": png_path}
        LOGGER.info(f"Speed benchmark saved to {save_dir} (speed.csv, speed.md, speed.png)")
        return self.files


def plot_speed(result: BenchmarkResult, path: str | Path) -> Path:
    """Draw the speed figure: per timing mode, batch-1 latency bars and dynamic latency against the linear mix.

    Left panel: batch-1 latency of every fixed candidate (routes, routed all-easy, static models). Right panel: the
    dynamic model's latency against the achieved hard ratio with the linear mix of its two routes, at batch 1 and
    batched (per image).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = result.modes
    fig, axes = plt.subplots(len(modes), 2, figsize=(12, 4.2 * len(modes)), squeeze=False, tight_layout=True)
    batch = result.meta["batch"]
    for (bar_ax, line_ax), mode in zip(axes, modes):
        rows = [r for r in result.rows if r["mode"] == mode]
        fixed = [r for r in rows if r["kind"] != "dynamic"]
        colors = {"route": "tab:red", "routed": "tab:orange", "static": "tab:blue"}
        bars = bar_ax.bar(
            [r["name"] for r in fixed], [r["bs1_ms"] for r in fixed], color=[colors[r["kind"]] for r in fixed]
        )
        bar_ax.bar_label(bars, fmt="%.2f", fontsize=8)
        bar_ax.set_ylabel("batch-1 latency, ms / image")
        bar_ax.set_title(f"{mode}: batch-1 latency ({result.meta['precision']}, {result.meta['imgsz']} px)")
        bar_ax.tick_params(axis="x", labelrotation=20)
        dyn = sorted((r for r in rows if r["kind"] == "dynamic"), key=lambda r: r["hard_ratio"])
        if dyn:
            line_ax.plot([r["p_bs1"] for r in dyn], [r["bs1_ms"] for r in dyn], "ro-", label="dynamic, batch 1")
            line_ax.plot([r["p_bs1"] for r in dyn], [r["mix_bs1_ms"] for r in dyn], "r--", label="linear mix, batch 1")
            per_img = [r["batch_ms"] / batch for r in dyn]
            line_ax.plot([r["p_batch"] for r in dyn], per_img, "bs-", label=f"dynamic, batch {batch} (per image)")
            mix = [r["mix_batch_ms"] / batch for r in dyn]
            line_ax.plot([r["p_batch"] for r in dyn], mix, "b--", label=f"linear mix, batch {batch} (per image)")
        line_ax.set_xlabel("share of images sent to the hard route")
        line_ax.set_ylabel("ms / image")
        line_ax.set_title(f"{mode}: dynamic model vs linear mix of its routes")
        line_ax.legend(fontsize=8)
    fig.suptitle(f"{result.meta['model']} on {result.meta['device_name']}", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _dyn_name(p: float) -> str:
    return f"dynamic p={p:.2f}"


def _row(mode: str, name: str, kind: str, gflops: float, bs1_ms: float, batch_ms: float, n_b: int) -> dict[str, Any]:
    return {
        "mode": mode,
        "name": name,
        "kind": kind,
        "gflops": gflops,
        "bs1_ms": bs1_ms,
        "batch_ms": batch_ms,
        "batch_img_s": n_b * 1e3 / batch_ms,
    }


def _ratios(rows: list[dict[str, Any]], meta: dict[str, Any], gflops: dict[str, float]) -> list[dict]:
    """Compute the headline ratios of each mode, each with its reference value where there is one."""
    out = []
    b = meta["batch"]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        by = {r["name"]: r for r in rows if r["mode"] == mode}

        def add(key: str, name: str, value: float, mode: str = mode, reference: float | None = None) -> None:
            reference = REFERENCES.get(key) if reference is None else reference
            out.append({"mode": mode, "key": key, "name": name, "value": value, "reference": reference})

        easy, hard, routed = by[EASY], by[HARD], by[ROUTED_EASY]
        base = meta["static_base"]
        if base:
            add("easy/base bs1", f"easy route / {base}, batch-1 latency", easy["bs1_ms"] / by[base]["bs1_ms"])
            add("easy/base batch", f"easy route / {base}, batch-{b} latency", easy["batch_ms"] / by[base]["batch_ms"])
            add("easy/base gflops", f"easy route / {base}, GFLOPs", gflops[EASY] / gflops[base])
        add("router bs1", "router overhead: routed all-easy / easy route, batch 1", routed["bs1_ms"] / easy["bs1_ms"])
        add(
            "router batch",
            f"router overhead: routed all-easy / easy route, batch {b}",
            routed["batch_ms"] / easy["batch_ms"],
        )
        add(
            "hard/easy bs1",
            "hard route / easy route, batch-1 latency (reference: GFLOPs ratio)",
            hard["bs1_ms"] / easy["bs1_ms"],
            reference=gflops[HARD] / gflops[EASY],
        )
        dyn = sorted((r for r in rows if r["mode"] == mode and r["kind"] == "dynamic"), key=lambda r: r["hard_ratio"])
        for r in dyn:
            add("dyn/mix bs1", f"dynamic p={r['p_bs1']:.2f} / linear mix, batch 1", r["dyn_over_mix_bs1"])
        for r in dyn:
            add("dyn/mix batch", f"dynamic p={r['p_batch']:.2f} / linear mix, batch {b}", r["dyn_over_mix_batch"])
        if dyn:
            mid = min(dyn, key=lambda r: abs(r["hard_ratio"] - 0.5))
            add(
                "tput p0.5/hard",
                f"batch-{b} throughput, dynamic p={mid['p_batch']:.2f} / all-hard (reference: linear mix)",
                mid["batch_img_s"] / hard["batch_img_s"],
                reference=hard["batch_ms"] / mid["mix_batch_ms"],
            )
    return out


def dynamic_latency_by_ratio(result: BenchmarkResult, mode: str | None = None) -> dict[float, float]:
    """Return {asked hard ratio: batch-1 ms per image} of the dynamic rows (graph mode if measured, else eager)."""
    mode = mode or result.deployed_mode
    return {r["hard_ratio"]: r["bs1_ms"] for r in result.rows if r["mode"] == mode and r["kind"] == "dynamic"}
