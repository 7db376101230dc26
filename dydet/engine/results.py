"""`RoutedResults`: Ultralytics' `Results` with the route an image took and its router score, kept everywhere.

`route` ('easy' | 'hard') and `score` (router easiness score; None when a route was forced) survive `cpu()`,
`numpy()`, `cuda()`, `to()` and indexing (all built on `new()`), `plot()` draws the route banner the saved images
carry, `summary()` (and so `to_json()`, `to_df()`, `to_csv()`) adds both to every row, and `save_txt()` writes the
stock label file plus one ``label-file,route,score`` row in ``routes.csv`` beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from ultralytics.engine.results import Results

# BGR; the same hues as the route curves in dydet.utils.plotting (tab:blue easy, tab:red hard)
ROUTE_COLORS = {"easy": (180, 119, 31), "hard": (40, 39, 214)}
ROUTES_CSV = "routes.csv"  # written by `RoutedResults.save_txt` beside the label files


def route_label(route: str, score: float | None) -> str:
    """Return the banner text for an image: `'hard, easiness 0.31'`, or `'hard (forced)'` when the route was forced.

    The router's score is an easiness score (high: the easy route is enough), so it is named: a bare number beside
    'hard' would read as a hardness.
    """
    return f"{route}, easiness {score:.2f}" if score is not None else f"{route} (forced)"


def draw_route_banner(im: np.ndarray, route: str, score: float | None, line_width: int | None = None) -> np.ndarray:
    """Draw a filled top-left banner with the route and router score, in the route's color.

    Args:
        im (np.ndarray): BGR image (H, W, 3), e.g. from `Results.plot()`; drawn on in place when writable.
        route (str): 'easy' or 'hard'.
        score (float | None): Router easiness score, None when the route was forced.
        line_width (int, optional): Box line width the image was plotted with (sets the text size).

    Returns:
        (np.ndarray): The image with the banner.

    Examples:
        >>> im = draw_route_banner(result.plot(), result.route, result.score)
    """
    if not im.flags.writeable or not im.flags.c_contiguous:
        im = np.ascontiguousarray(im).copy()
    h, w = im.shape[:2]
    lw = line_width or max(round((h + w) / 2 * 0.003), 2)  # Annotator's default line width
    thickness, scale, pad = max(lw - 1, 1), lw / 3, max(lw, 2)
    text = route_label(route, score)
    tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    if tw + 2 * pad > 0.6 * w:  # small images: keep the banner to about half the width
        scale = max(scale * (0.6 * w - 2 * pad) / tw, 0.25)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    color = ROUTE_COLORS.get(route, (128, 128, 128))
    cv2.rectangle(im, (0, 0), (tw + 2 * pad, th + base + 2 * pad), color, -1)
    cv2.putText(im, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return im


class RoutedResults(Results):
    """Detection `Results` of one image with its `route` and router `score`.

    Attributes:
        route (str | None): 'easy' or 'hard'; None until the predictor sets it.
        score (float | None): Router easiness score (high: the easy route is enough); None when a route was forced.

    Examples:
        >>> r = model.predict("img.jpg")[0]
        >>> r.cpu().numpy().route, r[0].score, r.to_json()  # route and score everywhere
    """

    def __init__(self, *args: Any, route: str | None = None, score: float | None = None, **kwargs: Any) -> None:
        """Build the stock `Results`, then attach `route` and `score`."""
        super().__init__(*args, **kwargs)
        self.route, self.score = route, score

    def new(self) -> RoutedResults:
        """Return an empty copy (image, path, names, speed) that keeps the route and score."""
        result = RoutedResults(
            orig_img=self.orig_img,
            path=self.path,
            names=self.names,
            speed=self.speed,
            route=self.route,
            score=self.score,
        )
        result.save_dir = self.save_dir
        return result

    def plot(self, *args: Any, **kwargs: Any) -> Any:
        """Plot as `Results.plot` does, with the route banner drawn before the image is shown, saved or returned."""
        show, save = kwargs.pop("show", False), kwargs.pop("save", False)
        filename, pil = kwargs.pop("filename", None), kwargs.pop("pil", False)
        im = super().plot(*args, **kwargs)
        if self.route is not None:
            im = draw_route_banner(im, self.route, self.score, kwargs.get("line_width"))
        if not (show or save or pil):
            return im
        from ultralytics.utils.plotting import Annotator

        annotator = Annotator(im)
        if show:
            annotator.show(self.path)
        if save:
            annotator.save(filename or f"results_{Path(self.path).name}")
        return annotator.result(pil)

    def summary(self, normalize: bool = False, decimals: int = 5) -> list[dict[str, Any]]:
        """Return the stock rows, each with ``route`` and ``score``.

        An image without detections gives one row with only these two, so `to_json()`, `to_df()` and `to_csv()`
        always say how the image was routed.
        """
        rows = super().summary(normalize=normalize, decimals=decimals)
        score = None if self.score is None else round(float(self.score), decimals)
        tag = {"route": self.route, "score": score}
        return [{**row, **tag} for row in rows] if rows else [tag]

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Write the stock label file, then append ``label-file,route,score`` to ``routes.csv`` in the same folder.

        The label file keeps Ultralytics' format (so datasets and tools still read it); the route and score go to
        the CSV (header ``file,route,score``; an empty score means the route was forced), one row per call.
        """
        out = super().save_txt(txt_file, save_conf=save_conf)
        if self.route is not None:
            csv = Path(txt_file).parent / ROUTES_CSV
            csv.parent.mkdir(parents=True, exist_ok=True)
            new = not csv.exists()
            with open(csv, "a", encoding="utf-8") as f:
                score = "" if self.score is None else f"{float(self.score):.5f}"
                f.write(("file,route,score\n" if new else "") + f"{Path(txt_file).name},{self.route},{score}\n")
        return out
