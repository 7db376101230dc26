"""Prediction with per-image routing: every `Results` carries the route its image took and its router score."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionPredictor
from ultralytics.utils import LOGGER, MACOS, WINDOWS

from dydet.engine.results import RoutedResults, route_label
from dydet.nn.checkpoint import load_checkpoint
from dydet.routing import ROUTES, Routing, RoutingSpec
from dydet.utils.checkpoint import atomic_write_bytes, write_error
from dydet.utils.errors import WriteError
from dydet.utils.files import claim_save_dir
from dydet.utils.preprocess import preprocess_images


class RoutedPreds(NamedTuple):
    """A batch's raw predictions together with the record of how it was routed (what `inference` returns)."""

    preds: Any
    routing: Routing


class RoutedPredictor(DetectionPredictor):
    """Detection predictor for dynamic models.

    Each batch is routed per image by the model with the routing given to the call
    (`predictor(source, routing=RoutingSpec(...))`; None: the model's own default), through the family's `routed`,
    which returns the batch's `Routing` record with the predictions. The results are `RoutedResults`, with two extra
    attributes, `route` ('easy' | 'hard') and `score` (router easiness score, None when a route was forced), kept
    through conversions and indexing. Plotted, saved and shown images carry a top-left banner with the route and score
    (`RoutedResults.plot`); text labels (`save_txt`) are the stock ones, with each image's route and score in
    ``labels/routes.csv``. With `verbose`, a summary line at the end gives the share routed hard and the routing's mean
    cost per image on the calibration split (and the budget it meets, when one was asked). The per-image log line says
    the route and score before the time (`160x160 2 circles, hard, easiness 0.31, 5.1ms`). With a tracker
    (`DynamicYOLO.track`), the tracked `Results` keep their route and score.

    Attributes:
        routed_images (dict[str, int]): Images sent each way by the current call.
    """

    routed_images: dict[str, int] | None = None

    def dynamic_model(self) -> Any:
        """Return the dynamic model (a `RoutedRunner`: PyTorch family or export runtime) behind the backend."""
        backend = getattr(self.model, "backend", self.model)
        return getattr(backend, "model", backend)

    def stream_inference(self, source=None, model=None, *args, routing: RoutingSpec | None = None, **kwargs):
        """Run the stock prediction loop with `routing` for every batch, then log the routing summary."""
        self.routed_images = {r: 0 for r in ROUTES}
        try:
            yield from super().stream_inference(source, model, *args, routing=routing, **kwargs)
        except WriteError:  # a video was incomplete (and deleted): stop reading the source, leave no empty folder
            if callable(close := getattr(self.dataset, "close", None)):
                close()
            self._release_run_dir()
            raise
        n = sum(self.routed_images.values())
        if self.args.verbose and n:
            spec = routing or self.dynamic_model().default_routing()
            LOGGER.info(
                f"Routing: {self.routed_images['hard']}/{n} images hard ({self.routed_images['hard'] / n:.1%}) at "
                f"{spec.describe()}{spec.cost_note()}"
            )

    def setup_model(self, model, verbose: bool = True) -> None:
        """Set up the model as Ultralytics does; a checkpoint path is loaded by dydet's safe loader first."""
        model = model or self.args.model
        if isinstance(model, (str, Path)) and str(model).lower().endswith(".pt"):
            model = load_checkpoint(model)[0]
        super().setup_model(model, verbose)

    def setup_source(self, source, *args, **kwargs) -> None:
        """Set up the source as Ultralytics does, with checked video files; claim the output folder atomically."""
        super().setup_source(source, *args, **kwargs)
        self.vid_writer = VideoFiles()
        if (self.args.save or self.args.save_txt) and self.save_dir != getattr(self, "_claimed_dir", None):
            self.save_dir = self._claimed_dir = claim_save_dir(self.args)

    def preprocess(self, im: torch.Tensor | list[np.ndarray]) -> torch.Tensor:
        """Letterbox images to the square `imgsz` as calibration does (`dydet.utils.preprocess`); tensors as given."""
        if isinstance(im, torch.Tensor):
            return super().preprocess(im)
        return preprocess_images(im, self.imgsz, self.device, torch.float16 if self.model.fp16 else torch.float32)

    def inference(self, im: torch.Tensor, *args, routing: RoutingSpec | None = None, **kwargs) -> RoutedPreds:
        """Route the batch with `routing` (None: the model's default) and return the predictions with the record."""
        return RoutedPreds(*self.dynamic_model().routed(im, routing))

    def construct_result(self, pred: torch.Tensor, img: torch.Tensor, orig_img: np.ndarray, img_path: str):
        """Build the stock detection result as a `RoutedResults` (route and score are set by `postprocess`)."""
        r = super().construct_result(pred, img, orig_img, img_path)
        return RoutedResults(r.orig_img, path=r.path, names=r.names, boxes=r.boxes.data)

    def postprocess(self, preds: RoutedPreds, img, orig_imgs, **kwargs):
        """Apply NMS, build `Results` and tag each with its image's route and score."""
        preds, routing = preds
        results = super().postprocess(preds, img, orig_imgs, **kwargs)
        scores = routing.score.tolist() if routing.score is not None else [None] * len(results)
        for r, route, score in zip(results, routing.routes, scores):
            r.route, r.score = route, score
            if self.routed_images is not None:
                self.routed_images[route] += 1
        return results

    def run_callbacks(self, event: str) -> None:
        """Run the callbacks of `event`; after postprocessing, keep each image's route and score on its `Results`.

        A tracker's postprocess callback replaces each `Results` by a filtered copy (`result[idx]`), which drops the
        attributes dydet added; they are put back on the new objects.
        """
        if event != "on_predict_postprocess_end":
            return super().run_callbacks(event)
        tags = [(getattr(r, "route", None), getattr(r, "score", None)) for r in self.results]
        super().run_callbacks(event)
        for r, (route, score) in zip(self.results, tags):
            r.route, r.score = route, score

    def write_results(self, i: int, p: Path, im: torch.Tensor, s: list[str]) -> str:
        """Write one image's results as the stock predictor does; the log line gets the route and score.

        Saved and shown images carry the route banner because `RoutedResults.plot` draws it.
        """
        line = super().write_results(i, p, im, s)
        result = self.results[i]
        route = getattr(result, "route", None)
        if route is None:
            return line
        # the stock line ends with "<detections>, <inference time>ms": the route and score go before the time
        head, sep, tail = line.rpartition(f"{result.speed['inference']:.1f}ms")
        return f"{head}{route_label(route, result.score)}, {sep}{tail}" if sep else line

    def save_predicted_images(self, save_path: Path, frame: int | None = 0) -> None:
        """Save the plotted image (or video frame) with its route banner; what cannot be written is an error.

        The stock `cv2.imwrite` returns False on a full disk or a read-only folder, and the stock video writer drops
        frames silently, and the run reports "Results saved" all the same. Images (and `save_frames` frames) are
        written atomically here instead, videos through `VideoFiles`, and a failed write stops the run in one line.
        """
        if self.dataset.mode not in {"stream", "video"}:
            return self._save_jpg(Path(save_path).with_suffix(".jpg"))
        if save_path not in self.vid_writer:  # a new video, named as Ultralytics names it
            fps = self.dataset.fps if self.dataset.mode == "video" else 30
            suffix, fourcc = (".mp4", "avc1") if MACOS else (".avi", "WMV2") if WINDOWS else (".avi", "MJPG")
            try:
                self.vid_writer.open(
                    save_path,
                    Path(save_path).with_suffix(suffix),
                    fourcc,
                    max(1, fps / self.args.vid_stride),  # skipped frames must not shorten the saved video
                    (self.plotted_img.shape[1], self.plotted_img.shape[0]),
                )
            except WriteError:
                self._release_run_dir()
                raise
        self.vid_writer.write(save_path, self.plotted_img)
        if self.args.save_frames:
            self._save_jpg(self.save_dir / f"{save_path.stem}_frames" / f"{save_path.stem}_{frame}.jpg")

    def _save_jpg(self, path: Path) -> None:
        """Encode the plotted image as JPEG and write it atomically; a failed write raises a one-line `WriteError`."""
        ok, buffer = cv2.imencode(".jpg", self.plotted_img)
        try:
            if not ok:
                raise OSError(errno.EIO, "the image could not be encoded")
            atomic_write_bytes(path, buffer.tobytes())
        except OSError as e:
            self._release_run_dir()
            if isinstance(e, WriteError):
                raise
            raise write_error(path, e) from e

    def _release_run_dir(self) -> None:
        """Remove the folder this run claimed when it holds nothing yet (a failed run leaves nothing behind)."""
        with contextlib.suppress(OSError):
            Path(self.save_dir).rmdir()


class VideoFiles(dict):
    """The predictor's video writers by output path (its `vid_writer`), and a check of every video they wrote.

    OpenCV reports neither a file it cannot create (the writer just stays closed) nor a full disk (`write` goes on
    returning True while the file stops growing). `open` creates the file first, so an unwritable folder raises the
    system's own error; and once Ultralytics' prediction loop has released the writers (iterating over `values()`,
    before it reports "Results saved"), every video is checked: one whose header does not count every frame written,
    or whose last frame does not read back, is deleted and the run stops with a one-line `WriteError`.

    Attributes:
        frames (dict[Any, tuple[Path, int]]): The file and the number of frames written, by output path.
    """

    def __init__(self):
        """Start with no videos."""
        super().__init__()
        self.frames = {}

    def open(self, key: Any, path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> None:
        """Create the video `path` and open a writer on it under `key`; a file that cannot be made is a `WriteError`."""
        try:
            path.open("wb").close()
        except OSError as e:
            raise write_error(path, e) from e
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            path.unlink(missing_ok=True)
            raise WriteError(
                f"could not write '{path}': this OpenCV build cannot open a {fourcc} video writer for it; predict "
                "without save=True (or with save_txt=True for the labels)"
            )
        self[key], self.frames[key] = writer, (path, 0)

    def write(self, key: Any, image: np.ndarray) -> None:
        """Add one frame to the video of `key`."""
        self[key].write(image)
        path, n = self.frames[key]
        self.frames[key] = path, n + 1

    def values(self):
        """Yield the writers (Ultralytics releases each), then check the videos they wrote."""
        yield from super().values()
        self.check()

    def check(self) -> None:
        """Check every released video once: delete the incomplete ones and raise a `WriteError` naming the first."""
        lost = [(path, n) for path, n in self.frames.values() if n and not holds_frames(path, n)]
        self.frames = {}
        if not lost:
            return
        path, n = lost[0]
        why = "No space left on device" if disk_full(path, n) else "the disk may be full"
        for video, _ in lost:
            video.unlink(missing_ok=True)
        raise WriteError(
            f"could not write '{path}' ({why}: the file lacks frames of the {n} written): free some disk space or "
            "choose a writable folder with project="
        )


def holds_frames(path: Path, frames: int) -> bool:
    """Return whether the video at `path` holds `frames` frames: its header says so and its last frame reads back.

    A writer that fails (full disk) stops writing altogether, header included; checking the last frame also catches a
    file cut short after a complete header. One frame is decoded, not the whole video.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        return (
            capture.isOpened()
            and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
            and capture.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
            and capture.grab()
        )
    finally:
        capture.release()


def disk_full(path: Path, frames: int) -> bool:
    """Return whether the filesystem of `path` has no room left for two more frames of its size (nor 1 MiB)."""
    try:
        st, size = os.statvfs(path.parent), path.stat().st_size
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < max(2**20, 2 * size // max(frames, 1))
