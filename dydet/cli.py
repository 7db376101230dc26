"""The ``dydet`` command: ``dydet MODE key=value ... --key value --flag``, in the style of the ``yolo`` command.

Arguments are Ultralytics' (``ultralytics/cfg/default.yaml``) plus dydet's own (``dydet/cfg/default.yaml``, read by
`dydet.cfg`). Values are parsed as Ultralytics does (ints, floats, bools, None/null, lists); hyphens in names become
underscores. The command only parses: it knows the argument names (to read ``--flag`` forms and suggest a name for a
typo) and hands the dict to the model's mode method, where `dydet.cfg.check_args` checks every value once. A bad
command line (a `dydet.utils.errors.UsageError`, also when `check_args` raises it) is reported in one line with exit
code 2; another user error raised while running (any `dydet.utils.errors.DydetError`) in one line with exit code 1;
anything else is a bug and keeps its traceback. Set ``DYDET_DEBUG=1`` to get tracebacks for every error.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import threading
from collections.abc import Iterator
from functools import cache
from importlib import metadata, util
from pathlib import Path
from typing import Any

from dydet import cfg
from dydet.utils.errors import DydetError, UsageError
from dydet.utils.offline import set_offline_env, setup_offline

MODES = {
    "train": "train a dynamic model: stage 1 (both routes), stage 2 (router), then calibration",
    "val": "measure accuracy per route, or at a threshold / hard ratio(s)",
    "predict": "detect objects; each image takes the easy or the hard route by its router score",
    "export": "export split graphs that route at run time: format=onnx or format=openvino",
    "benchmark": "speed only (latency, throughput, GFLOPs) of each route and hard ratio beside static baselines; "
    "accuracy: 'dydet val hard_ratios=...'",
    "track": "track objects in videos with Ultralytics' trackers (tracker=...yaml), routing every frame",
    "tune": "evolve training hyperparameters, each trial a dydet stage-1 training (iterations=N)",
}
META_MODES = {
    "help": "this screen; 'dydet MODE help' lists the arguments of one mode",
    "version": "print the versions of dydet, ultralytics, torch and python",
    "settings": "show dydet's own Ultralytics settings file; 'dydet settings key=value' or 'reset' changes it",
    "checks": "print the system, the installed packages and dydet's state (versions, offline, device)",
}
MODEL_FREE_MODES = frozenset({"settings", "checks"})  # meta modes that take their own words, not arguments
DEFAULT_MODEL = "dy-yolo11n.yaml"  # `dydet train` without model= (the demo's own: `dydet.engine.args.DEMO_MODEL`)
HELP_TOKENS = frozenset({"help", "-h", "--help"})
DEBUG_ENV = "DYDET_DEBUG"

# Ultralytics keys that its own argument check translates (`ultralytics.cfg._handle_deprecation`): accepted, not shown.
DEPRECATED_KEYS = frozenset({"boxes", "hide_labels", "hide_conf", "line_thickness", "end2end", "half", "int8"})
NOT_ARGUMENTS = frozenset({"mode", "task"})  # the mode is the first word; dydet only detects
# Ultralytics keys taken as True when given alone (`--save`, `save`) besides those with a bool default
EXTRA_FLAG_KEYS = frozenset({"nms", "channels_last", "half", "int8", "boxes", "hide_labels", "hide_conf", "end2end"})
# Keys of other tasks (segment, classify, pose, obb, depth, track), left out of the help screens
NOT_FOR_DETECT = frozenset(
    {
        "overlap_mask",
        "mask_ratio",
        "dropout",
        "retina_masks",
        "pose",
        "kobj",
        "rle",
        "angle",
        "dlog",
        "dgrad",
        "dlam",
        "copy_paste",
        "copy_paste_mode",
        "auto_augment",
        "erasing",
        "tracker",
        "model",  # shown with dydet's arguments, where its default depends on the mode
    }
)
# Which Ultralytics arguments `dydet MODE help` shows: whole sections of its default.yaml, plus single keys
ULTRALYTICS_SECTIONS = {
    "train": ("Train settings", "Hyperparameters"),
    "val": ("Val/Test settings",),
    "predict": ("Predict settings", "Visualize settings"),
    "export": ("Export settings",),
    "benchmark": (),
    "track": ("Predict settings", "Visualize settings"),
    "tune": ("Train settings", "Hyperparameters"),
}
ULTRALYTICS_EXTRA_KEYS = {
    "train": ("val", "plots"),
    "val": ("data", "imgsz", "batch", "device", "workers", "project", "name", "exist_ok", "verbose", "rect"),
    "predict": (
        "imgsz",
        "batch",
        "device",
        "conf",
        "iou",
        "max_det",
        "quantize",
        "project",
        "name",
        "exist_ok",
        "save",
    ),
    "export": ("imgsz", "batch", "device", "quantize", "nms", "data", "fraction"),
    "benchmark": ("data", "imgsz", "batch", "device", "quantize", "format", "verbose"),
    "track": ("imgsz", "batch", "device", "conf", "iou", "max_det", "project", "name", "exist_ok", "save", "tracker"),
    "tune": ("val", "plots"),
}
VERBATIM_KEYS = frozenset({"baselines"})  # values kept as the user wrote them ("none" is not None)
# Where `dydet train` (default project and name) writes the calibrated model; the examples below use it
FINAL_PT = "runs/detect/train-router/weights/final.pt"
EXAMPLES = (
    "dydet train data=tiny epochs=1 imgsz=96",
    f"dydet val model={FINAL_PT} data=tiny hard_ratios=[0,0.5,1]",
    f"dydet predict model={FINAL_PT} source=path/to/images --hard-ratio 0.3",
    f"dydet export model={FINAL_PT} format=onnx",
    "dydet val model=runs/detect/train-router/weights/final_onnx data=tiny",
    f"dydet benchmark model={FINAL_PT} baselines=none imgsz=96 reps=3",
    f"dydet track model={FINAL_PT} source=path/to/video.mp4 tracker=bytetrack.yaml",
    "dydet tune data=tiny epochs=1 iterations=2",
)
# What `dydet MODE help` shows instead of Ultralytics' own default and help line, where dydet differs
HELP_OVERRIDES = {
    "train": {
        "verbose": (False, "(bool) also print the layer table, per-class tables and stage 2's repeats of stage 1"),
    },
    "export": {
        "format": ("onnx", "(str) onnx or openvino: split graphs (router, easy, hard) that route at run time"),
        "quantize": (None, "(int, optional) 16: fp16 graphs (= half=True); 8: int8 OpenVINO graphs (needs data=)"),
        "dynamic": (False, "(bool) not available: the graphs take any batch size at a fixed imgsz (True is refused)"),
        "simplify": (False, "(bool) ONNX only: simplify the graphs with onnxslim when it is installed"),
        "opset": (None, "(int, optional) ONNX opset (default: the newest one Ultralytics uses with your torch)"),
        "nms": (
            None,
            "(bool, optional) None: NMS in dydet's runtime; False: NMS-free graphs (dy-yolo26); True refused",
        ),
    },
}
# Ultralytics arguments that a mode of dydet does not use, left out of its help screen
HELP_HIDDEN = {"export": frozenset({"optimize", "workspace", "data", "fraction", "batch"})}
TRAIN_LIKE_MODES = frozenset({"train", "tune"})  # modes that build a new model from DEFAULT_MODEL without model=


# ---------------------------------------------------------------------------------------------------------- arguments
@cache
def ultralytics_defaults() -> dict[str, Any]:
    """Return Ultralytics' default configuration (`ultralytics.cfg.DEFAULT_CFG_DICT`)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return dict(DEFAULT_CFG_DICT)


@cache
def ultralytics_args() -> dict[str, tuple[str, str]]:
    """Return each Ultralytics argument's (section, help line), read from the comments of its default.yaml."""
    spec = util.find_spec("ultralytics")
    text = (Path(spec.origin).parent / "cfg" / "default.yaml").read_text(encoding="utf-8")
    section, out = "", {}
    for line in text.splitlines():
        if m := re.match(r"# (.+?) -{5,}", line):
            section = m[1]
        elif m := re.match(r"(\w+):[^#]*#\s*(.*)", line):
            out[m[1]] = (section, m[2].strip())
    return out


@cache
def valid_keys() -> frozenset[str]:
    """Return every accepted argument name, any mode."""
    return frozenset(ultralytics_defaults()) - NOT_ARGUMENTS | DEPRECATED_KEYS | set(cfg.load_args())


def is_flag_key(key: str) -> bool:
    """Return whether `key` may be given without a value (``--save``, ``save``), meaning True."""
    own = cfg.load_args().get(key)
    if own is not None:
        return own.type == "bool"
    return isinstance(ultralytics_defaults().get(key), bool) or key in EXTRA_FLAG_KEYS


# ------------------------------------------------------------------------------------------------------------ parsing
def _help_hint(mode: str) -> str:
    return f"See 'dydet {mode} help'."


def _with_hint(message: str, mode: str) -> str:
    """Return `message` as one sentence-ended line followed by the help hint of `mode`."""
    message = " ".join(message.split())
    return f"{message}{'' if message.endswith(('.', '?', '!')) else '.'} {_help_hint(mode)}"


def _suggest(word: str, candidates: set[str] | frozenset[str] | list[str]) -> str:
    """Return " Did you mean 'x'?" for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(word, sorted(candidates), n=1)
    return f" Did you mean '{match[0]}'?" if match else ""


def check_mode(mode: str) -> str:
    """Return `mode` if it is a dydet mode, else raise a `UsageError` naming the closest one."""
    if mode in MODES or mode in META_MODES:
        return mode
    names = [*MODES, *META_MODES]
    raise UsageError(f"'{mode}' is not a valid mode.{_suggest(mode, names)} Modes: {', '.join(names)}.")


def _smart_value(key: str, raw: str) -> Any:
    """Parse a value the way Ultralytics does; also read YAML's ``null`` as None.

    ``baselines`` is kept as written (only ``null`` means None, the family default): Ultralytics' parser would turn
    ``none`` into None too, and ``baselines=none`` means no baselines.
    """
    if key in VERBATIM_KEYS:
        return None if raw.strip().lower() == "null" else raw.strip()
    from ultralytics.cfg import parse_key_value_pair

    _, value = parse_key_value_pair(f"{key}={raw}")
    return None if isinstance(value, str) and value.lower() == "null" else value


def _normalize_key(key: str, mode: str) -> str:
    key = key.strip().replace("-", "_")
    if not re.fullmatch(r"[A-Za-z_]\w*", key):
        raise UsageError(f"'{key}' is not a valid argument name. {_help_hint(mode)}")
    return key


def _takes_next(key: str, following: str | None) -> bool:
    """Return whether ``--key`` takes the token `following` as its value.

    A key that needs a value takes it unless it is another argument (``--x``, ``x=1``); a flag (``--save``) takes it
    unless it is the name of an argument (``--save-txt rect``: two flags), and ``--no-flag`` never does.
    """
    if following is None or following.startswith("--"):
        return False
    if m := re.match(r"([A-Za-z_][\w-]*)=", following):
        return m[1].replace("-", "_") not in valid_keys()
    if key.startswith("no_") and key not in valid_keys():
        return False
    return not is_flag_key(key) or following.replace("-", "_") not in valid_keys()


def _iter_pairs(tokens: list[str], mode: str) -> Iterator[tuple[str, Any]]:
    """Yield (key, raw value) for each argument token; a raw value of `...` marks a key given alone."""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.startswith("--") and "=" not in token:
            key = _normalize_key(token[2:], mode)
            following = tokens[i] if i < len(tokens) else None
            raw = following if _takes_next(key, following) else ...
            i += raw is not ...
        else:
            key, sep, raw = token.removeprefix("--").partition("=")
            key, raw = _normalize_key(key, mode), raw if sep else ...
        if raw is not ... and not raw.strip():
            raise UsageError(f"'{key}' is missing a value, e.g. {key}=VALUE. {_help_hint(mode)}")
        yield key, raw


def _known_key(key: str, mode: str) -> str:
    """Return `key` if it is an argument name of any mode, else raise a `UsageError` naming the closest one."""
    if key not in valid_keys():
        raise UsageError(
            f"'{key}' is not a valid argument.{_suggest(key, valid_keys() - DEPRECATED_KEYS)} {_help_hint(mode)}"
        )
    return key


def parse_args(argv: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """Parse a dydet command line.

    Args:
        argv (list[str] | None): The arguments after ``dydet``; None reads ``sys.argv[1:]``.

    Returns:
        (tuple[str, dict[str, Any]]): The mode and its arguments, as parsed (their values are checked by the mode
            method, `dydet.cfg.check_args`). Help requests give ``("help", {"mode": MODE})`` (or ``("help", {})``
            for the general screen) and ``("version", {})``.

    Raises:
        UsageError: For an unknown mode or argument name, or a missing value.
    """
    from ultralytics.cfg import merge_equals_args

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        return "help", {}
    if args[0] in {"-V", "--version"}:
        return "version", {}
    mode = check_mode(args[0])
    if mode == "help":  # `dydet help train` works too
        topic = check_mode(args[1]) if args[1:] else None
        return "help", ({"mode": topic} if topic in MODES else {})
    if mode == "version":
        return "version", {}
    if mode in MODEL_FREE_MODES:  # their own words (`dydet settings runs_dir=/x`), not model arguments
        return ("help", {}) if HELP_TOKENS.intersection(args[1:]) else (mode, {"args": args[1:]})
    if HELP_TOKENS.intersection(args[1:]):
        return "help", {"mode": mode}
    try:
        tokens = merge_equals_args(args[1:])
    except SyntaxError as e:
        raise UsageError(_with_hint(str(e), mode)) from None

    overrides: dict[str, Any] = {}
    for raw_key, raw in _iter_pairs(tokens, mode):
        key, negated = raw_key, False
        if raw_key.startswith("no_") and raw_key not in valid_keys() and is_flag_key(raw_key[3:]):
            key, negated = raw_key[3:], True
        key = _known_key(key, mode)
        if raw is ...:
            if not is_flag_key(key):
                raise UsageError(f"'{key}' needs a value, e.g. {key}=VALUE. {_help_hint(mode)}")
            value = not negated
        elif negated:
            raise UsageError(f"'no-{key}' takes no value. {_help_hint(mode)}")
        else:
            value = _smart_value(key, raw)
        overrides[key] = value
    return mode, overrides


# --------------------------------------------------------------------------------------------------------------- help
def _fmt(value: Any) -> str:
    return str(value).replace(" ", "") if isinstance(value, (list, tuple)) else str(value)


def _rows(rows: list[tuple[str, str]], indent: int = 2, width: int = 30) -> list[str]:
    pad = " " * indent
    return [f"{pad}{left:<{width}} {right}" if len(left) < width else f"{pad}{left}  {right}" for left, right in rows]


def _default_model(mode: str, overrides: dict[str, Any]) -> str | None:
    """Return the model a mode builds without model=: the demo's own on the demo data, else `DEFAULT_MODEL`."""
    if mode not in TRAIN_LIKE_MODES:
        return None
    from dydet.engine.args import DEMO_MODEL, uses_demo_data

    return DEMO_MODEL if mode == "train" and uses_demo_data(overrides, {}) else DEFAULT_MODEL


def _model_row(mode: str) -> tuple[str, str]:
    if mode in TRAIN_LIKE_MODES:
        return (
            f"model={DEFAULT_MODEL}",
            "model YAML (dy-*.yaml) or checkpoint to start from (on the demo data: dy-yolo11n-s.yaml)",
        )
    return "model=(required)", f"calibrated dydet checkpoint (e.g. {FINAL_PT}) or its export folder"


def ultralytics_keys_for(mode: str) -> list[str]:
    """Return the Ultralytics arguments `dydet MODE help` lists, in the order of Ultralytics' default.yaml."""
    info = ultralytics_args()
    keys = [k for k, (section, _) in info.items() if section in ULTRALYTICS_SECTIONS[mode]]
    keys += [k for k in ULTRALYTICS_EXTRA_KEYS[mode] if k in info and k not in keys]
    order = list(info)
    shown = set(keys) - NOT_FOR_DETECT - HELP_HIDDEN.get(mode, frozenset()) | (
        {"tracker"} if mode == "track" else set()
    )
    return sorted(shown, key=order.index)


def mode_help(mode: str) -> str:
    """Return the help screen of one mode: dydet's arguments first, then the Ultralytics ones that apply."""
    defaults, info = {**ultralytics_defaults(), **cfg.mode_defaults(mode)}, ultralytics_args()
    dydet = [(f"{a.name}={_fmt(a.default)}", a.help) for a in cfg.load_args().values() if mode in a.modes]
    over = HELP_OVERRIDES.get(mode, {})
    ultra = [
        (f"{k}={_fmt(over[k][0] if k in over else defaults.get(k))}", over[k][1] if k in over else info[k][1])
        for k in ultralytics_keys_for(mode)
    ]
    lines = [
        f"dydet {mode}: {MODES[mode]}.",
        "",
        f"Usage: dydet {mode} key=value ... (or --key value, --key=value, --flag, --no-flag)",
        "",
        "dydet arguments:",
        *_rows([_model_row(mode), *dydet]),
        "",
        "Ultralytics arguments:",
        *_rows(ultra),
    ]
    return "\n".join(lines)


def general_help() -> str:
    """Return the ``dydet help`` screen: modes, dydet's own arguments and examples."""
    modes = [(m, d) for m, d in {**MODES, **META_MODES}.items()]
    args = [(f"{a.name}={_fmt(a.default)}", f"[{','.join(a.modes)}] {a.help}") for a in cfg.load_args().values()]
    lines = [
        "dydet: DynamicDet (CVPR 2023) on Ultralytics - one detector with an easy and a hard route, a per-image",
        "router, and a speed/accuracy threshold chosen at run time.",
        "",
        "Usage: dydet MODE key=value ... (also --key value, --key=value, --flag, --no-flag; - or _ in names)",
        "",
        "Modes:",
        *_rows(modes, width=10),
        "",
        "dydet arguments (default, modes); Ultralytics arguments such as epochs=100 or imgsz=640 apply as well:",
        *_rows(args),
        "",
        "Examples (data=tiny and data=demo are generated locally; train writes the calibrated model to",
        f"{FINAL_PT}):",
        *(f"  {e}" for e in EXAMPLES),
        "",
        "'dydet MODE help' lists every argument of a mode.",
    ]
    return "\n".join(lines)


def version_string() -> str:
    """Return the versions of dydet and what it runs on, without importing torch."""

    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    return f"dydet {v('dydet')} (ultralytics {v('ultralytics')}, torch {v('torch')}, python {python})"


# ----------------------------------------------------------------------------------------------------------- dispatch
def _model_class():
    from dydet import DynamicYOLO  # imported late: the CLI's help and parsing need no model code

    return DynamicYOLO


def run(mode: str, overrides: dict[str, Any]) -> Any:
    """Build the model and call its `mode` method: ``DynamicYOLO(model).<mode>(**overrides)``.

    Args:
        mode (str): One of `MODES`.
        overrides (dict[str, Any]): Parsed arguments; ``model`` is taken out and given to the constructor.

    Returns:
        (Any): What the mode method returned (None for predict, whose results are streamed and saved).

    Raises:
        UsageError: If a mode other than train is given no model.
    """
    overrides = dict(overrides)
    setup_offline()  # also before `dydet settings`: makes dydet's own settings file, never the user's
    if mode in MODEL_FREE_MODES:
        from dydet.utils.system import handle_settings, run_checks

        return handle_settings(overrides.get("args", [])) if mode == "settings" else run_checks()
    model = overrides.pop("model", _default_model(mode, overrides))
    if model is None:
        raise UsageError(f"'dydet {mode}' needs a model, e.g. model=path/to/best.pt. {_help_hint(mode)}")
    streams = mode in {"predict", "track"}
    if streams:  # as `yolo predict`: save the annotated images, stream so long videos do not fill memory
        overrides.setdefault("save", True)
        overrides["stream"] = True
    trust = overrides.pop("trust_checkpoint", False)  # unsafe opt-in, also covers pretrained=; see cfg/default.yaml
    yolo = _model_class()(model, trust_checkpoint=True) if trust else _model_class()(model)
    result = getattr(yolo, mode)(**overrides)
    if streams:
        for _ in result:
            pass
        return None
    return result


def _fail(message: str, code: int) -> None:
    message = re.sub(r"^dydet\s*:\s*", "", " ".join(str(message).split()), flags=re.IGNORECASE)
    print(f"dydet: {message}", file=sys.stderr)
    raise SystemExit(code)


def entrypoint(argv: list[str] | None = None) -> None:
    """Run the ``dydet`` command.

    Args:
        argv (list[str] | None): The arguments after ``dydet``; None reads ``sys.argv[1:]``.

    Raises:
        SystemExit: Code 2 for a bad command line, 1 for a `DydetError` (bad input found while running), 130 on
            Ctrl-C.
    """
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
    set_offline_env()  # before anything imports Ultralytics, which reads these variables once, at import
    mode = None
    unwritten = []  # full-disk errors of Ultralytics' plotting threads, reported as one line once the run ends
    hook = threading.excepthook
    threading.excepthook = lambda args: unwritten.append(args.exc_value) if _write_error(args.exc_value) else hook(args)
    try:
        mode, overrides = parse_args(argv)
        if mode == "help":
            print(mode_help(overrides["mode"]) if overrides.get("mode") else general_help())
        elif mode == "version":
            print(version_string())
        else:
            run(mode, overrides)
            if unwritten:
                raise _write_error(unwritten[0])
    except UsageError as e:
        if debug:
            raise
        hint = mode in MODES and _help_hint(mode) not in str(e)  # a value refused by `check_args` in the mode method
        _fail(_with_hint(str(e), mode) if hint else str(e), 2)
    except DydetError as e:
        if debug:
            raise
        _fail(str(e), 1)
    except OSError as e:  # a full disk or read-only filesystem met by a writer dydet does not own
        if debug or not _write_error(e):
            raise
        _fail(str(_write_error(e)), 1)
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted", 130)
    finally:
        threading.excepthook = hook


def _write_error(e: BaseException) -> DydetError | None:
    """Return the one-line error for a full disk or read-only filesystem (`e` from any writer), else None."""
    from dydet.utils.checkpoint import as_write_error

    return as_write_error(e, "the output folder")


if __name__ == "__main__":
    entrypoint()
