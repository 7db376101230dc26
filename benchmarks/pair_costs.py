"""Per-route GFLOPs at 640 px of the scale pairs against the two static models of each pair (docs/BENCHMARKS.md)."""

from dydet.utils.offline import setup_offline

setup_offline()
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops

from dydet import DynamicYOLO

for pair, (easy, hard) in {"dy-yolo11n-s": ("yolo11n", "yolo11s"), "dy-yolo26n-s": ("yolo26n", "yolo26s")}.items():
    s = DynamicYOLO(f"{pair}.yaml").model.route_summary(640)
    st = {m: get_flops(DetectionModel(f"{m}.yaml", verbose=False), 640) for m in (easy, hard)}
    routes = " | ".join(f"{s[r]['gflops']:.2f}" for r in ("easy", "hard")) + f" | {s['router']['gflops']:.3f}"
    print(f"| {pair} | {routes} | {easy}: {st[easy]:.2f} | {hard}: {st[hard]:.2f} |")
