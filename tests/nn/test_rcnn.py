"""Dy-Faster R-CNN model: build, costs, real skipping, per-image routing, checkpoints, pretrained weights, errors."""

import pytest
import torch
from torchvision.models import resnet18, resnet34
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from dydet.nn.checkpoint import load_checkpoint_dict, save_checkpoint
from dydet.nn.rcnn import RCNNDetectionModel, StaticRCNN
from dydet.nn.rcnn.parts import make_transform
from dydet.routing import RoutingSpec
from dydet.utils.errors import CheckpointError, DydetError

NC = 3


@pytest.fixture(scope="module")
def model() -> RCNNDetectionModel:
    torch.manual_seed(0)
    m = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False).eval()
    with torch.no_grad():  # non-zero links, so that the hard route differs from the easy one
        for p in m.links.parameters():
            p.normal_(0, 0.1)
    return m


def images(n: int = 4, size: int = 128, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def batch_of(x: torch.Tensor) -> dict:
    """A batch with two boxes per image (normalised xywh), as Ultralytics' loader gives it."""
    n = x.shape[0]
    bboxes = torch.tensor([[0.3, 0.3, 0.3, 0.4], [0.7, 0.6, 0.25, 0.3]]).repeat(n, 1)
    bboxes[::2] += 0.05 * torch.arange(n).repeat_interleave(2)[::2, None] / n
    return {
        "img": x,
        "bboxes": bboxes,
        "cls": torch.tensor([[0.0], [2.0]]).repeat(n, 1),
        "batch_idx": torch.arange(n).repeat_interleave(2).float(),
    }


def test_builds_from_scaled_names():
    m = RCNNDetectionModel("dy-faster-rcnn-r34.yaml", nc=NC, verbose=False)
    assert m.depth == 34 and m.nc == NC and len(m.names) == NC
    assert StaticRCNN("faster-rcnn-r18.yaml", nc=NC).depth == 18
    m.eval()
    with torch.no_grad():
        out = m.forward_both(images(2, 64))
    assert out["easy"].shape == out["hard"].shape == (2, 100, 6) and out["score"].shape == (2,)


def test_r50_route_costs_match_the_computed_table():
    """Easy route = a Faster R-CNN R50-FPN (206.3 GMACs at 1280x800), hard = + B2 layer2-4 + links (282.6)."""
    m = RCNNDetectionModel("dy-faster-rcnn-r50.yaml", verbose=False).eval()
    s = m.route_summary([800, 1280])
    torch.manual_seed(1)  # other weights: the same count (RoI head at the full 1000 proposals, whatever survives NMS)
    assert RCNNDetectionModel("dy-faster-rcnn-r50.yaml", verbose=False).eval().route_summary([800, 1280]) == s
    assert s["easy"]["gflops"] / 2 == pytest.approx(206.3, rel=0.02)
    assert s["hard"]["gflops"] / 2 == pytest.approx(282.6, rel=0.02)
    assert s["router"]["params"] == pytest.approx(3.69e6, rel=0.01)


def test_links_and_b2_never_run_for_easy_images(model):
    seen = {"b2": [], "links": []}
    hooks = [
        model.b2.layer2.register_forward_hook(lambda m, i, o: seen["b2"].append(i[0].shape[0])),
        *[
            link.register_forward_hook(lambda m, i, o: seen["links"].append(i[0].shape[0]))
            for link in model.links.links.values()
        ],
    ]
    try:
        x = images(4)
        with torch.no_grad():
            _, record = model.routed(x, RoutingSpec.forced("easy"))
            assert not seen["b2"] and not seen["links"]
            _, record = model.routed(x, 0.0)  # threshold 0: every image easy
            assert not record.hard.any() and not seen["b2"] and not seen["links"]
            scores = model.router_scores(x)
            t = float(scores.sort().values[1:3].mean())  # two images hard, two easy
            _, record = model.routed(x, t)
        assert int(record.hard.sum()) == 2
        assert seen["b2"] == [2] and set(seen["links"]) == {2}  # only the hard subset went through
    finally:
        for h in hooks:
            h.remove()


def test_mixed_batch_gives_each_image_its_own_detections(model):
    x = images(4)
    with torch.no_grad():
        scores = model.router_scores(x)
        t = float(scores.sort().values[1:3].mean())
        dets, record = model.routed(x, t)
        assert record.routes.count("hard") == 2
        for i in range(4):
            alone, rec = model.routed(x[i : i + 1], t)
            assert rec.routes == [record.routes[i]]
            assert torch.allclose(alone[0], dets[i], atol=1e-4)
            forced = model.routed(x[i : i + 1], RoutingSpec.forced(record.routes[i]))[0]
            assert torch.allclose(forced[0], dets[i], atol=1e-4)
    easy, hard = model.routed(x, RoutingSpec.forced("easy"))[0], model.routed(x, RoutingSpec.forced("hard"))[0]
    assert not torch.allclose(easy, hard)  # the routes really differ (links are non-zero here)


def test_checkpoint_round_trip_is_weights_only(model, tmp_path):
    model.threshold, model.stage = 0.42, 1
    path = save_checkpoint({"model": model, "epoch": -1}, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # no pickled classes at all
    assert raw["model"]["class"] == "DynamicRCNN"
    loaded = load_checkpoint_dict(path)["model"].eval()
    assert isinstance(loaded, RCNNDetectionModel) and loaded.threshold == 0.42 and loaded.stage == 1
    x = images(2)
    with torch.no_grad():
        assert torch.equal(model.routed(x, 0.5)[0], loaded.routed(x, 0.5)[0])


def test_per_image_losses_equal_batch_of_one_losses(model):
    batch = batch_of(images(3))
    l1, l2 = model.per_image_losses(batch)
    assert l1.shape == l2.shape == (3,) and not torch.allclose(l1, l2)
    for i in range(3):
        m = batch["batch_idx"] == i
        one = {"img": batch["img"][i : i + 1], "bboxes": batch["bboxes"][m], "cls": batch["cls"][m]}
        one["batch_idx"] = torch.zeros(int(m.sum()))
        a, b = model.per_image_losses(one)
        assert a[0] == pytest.approx(float(l1[i]), abs=1e-4) and b[0] == pytest.approx(float(l2[i]), abs=1e-4)
    again = model.per_image_losses(batch)  # seeded samplers: reproducible
    assert torch.allclose(again[0], l1) and torch.allclose(again[1], l2)


def test_pretrained_faster_rcnn_gives_equal_routes_at_step_0(tmp_path):
    torch.manual_seed(0)
    tv = FasterRCNN(resnet_fpn_backbone(backbone_name="resnet18", weights=None), num_classes=NC + 1).eval()
    torch.save(tv.state_dict(), tmp_path / "frcnn.pth")
    m = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False).load(str(tmp_path / "frcnn.pth")).eval()
    tv.transform = make_transform()  # the one intended difference: the letterbox is not resized again
    x = images(2)
    with torch.no_grad():
        want = [d["boxes"] for d in tv(list(x))]
        for route in ("easy", "hard"):
            got = m.routed(x, RoutingSpec.forced(route))[0]
            for i in range(2):
                assert torch.allclose(got[i, : len(want[i]), :4], want[i], atol=1e-4)
    # a torchvision training checkpoint ({"model": state_dict, ...}) works too, and another class count keeps the
    # class layers random
    torch.save({"model": tv.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC + 2, verbose=False).load(str(tmp_path / "ckpt.pth"))


def test_imagenet_resnet_initialises_both_backbones(tmp_path):
    r = resnet18()
    torch.save(r.state_dict(), tmp_path / "r18.pth")
    m = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False).load(str(tmp_path / "r18.pth"))
    assert torch.equal(m.b1.conv1.weight, r.conv1.weight)
    assert torch.equal(m.b2.layer3[0].conv1.weight, r.layer3[0].conv1.weight)
    assert float(m.links.links["2_3"][1].weight.detach().abs().sum()) == 0


def test_bad_pretrained_inputs_get_one_line_errors(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    m = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False)
    torch.save({"model": DetectionModel("yolo11n.yaml", verbose=False)}, tmp_path / "yolo.pt")
    refused = "not a torchvision state dict|is a YOLO/dydet checkpoint, not torchvision weights"
    with pytest.raises(CheckpointError, match=refused) as e:
        m.load(str(tmp_path / "yolo.pt"))
    assert "\n" not in str(e.value)
    torch.save(resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(DydetError, match="ResNet-34 .* ResNet-18") as e:
        m.load(str(tmp_path / "r34.pth"))
    assert "\n" not in str(e.value)


def test_trainer_loss_contract_stage_1_and_2():
    torch.manual_seed(0)
    m = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False).train()
    batch = batch_of(images(2, 96))
    loss, items = m(batch)
    assert loss.shape == (1,) and loss.requires_grad
    assert tuple(items) == m.loss_names() and len(items) == 8 and items["e_cls_loss"] > 0
    zeros = m.loss(batch, preds=object())[1]  # the validator's call during training: same names, zeros
    assert tuple(zeros) == tuple(items) and all(float(v) == 0 for v in zeros.values())
    m.stage, m.criterion = 2, None
    with torch.no_grad():  # routes that differ (with zero links both routes are equal and the router learns nothing)
        for p in m.links.parameters():
            p.normal_(0, 0.1)
    m.eval()  # stage 2: the detector is frozen, BatchNorm in eval (the router trainer's `_model_train`)
    loss, items = m(batch)
    assert tuple(items) == ("r_loss", "delta", "score", "hard")
    loss.sum().backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(n.startswith("router.") for n in grads)


def test_scaled_names_and_bad_yaml():
    from dydet.nn.rcnn import is_rcnn_cfg
    from dydet.utils.errors import ConfigError

    assert is_rcnn_cfg("dy-faster-rcnn-r101.yaml") and is_rcnn_cfg("faster-rcnn-r50.yaml")
    assert not is_rcnn_cfg("dy-yolo11n.yaml") and not is_rcnn_cfg("model.pt")
    with pytest.raises(ConfigError, match="no scale 'r99'"):
        RCNNDetectionModel("dy-faster-rcnn-r99.yaml", verbose=False)
    with pytest.raises(ConfigError, match="static R-CNN YAML"):
        RCNNDetectionModel("faster-rcnn-r18.yaml", verbose=False)


def test_dynamic_yolo_load_takes_dydet_and_torchvision_files(model, tmp_path):
    from dydet import DynamicYOLO

    save_checkpoint({"model": model, "epoch": -1}, tmp_path / "dy.pt")
    front = DynamicYOLO("dy-faster-rcnn-r18.yaml")
    front.model = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=NC, verbose=False)
    front.load(tmp_path / "dy.pt")
    assert torch.equal(front.model.links.links["2_3"][0].weight, model.links.links["2_3"][0].weight)
    torch.save(StaticRCNN("faster-rcnn-r18.yaml", nc=NC).state_dict(), tmp_path / "tv.pth")
    front.load(tmp_path / "tv.pth")
    assert float(front.model.links.links["2_3"][1].weight.detach().abs().sum()) == 0  # links zeroed again


def test_static_faster_rcnn_equals_the_easy_route(model):
    static = StaticRCNN("faster-rcnn-r18.yaml", nc=NC).eval()
    renamed = {"b1.": "backbone.body.", "fpn.": "backbone.fpn.", "rpn.": "rpn.", "roi_heads.": "roi_heads."}
    state = {
        new + k[len(old) :]: v
        for k, v in model.state_dict().items()
        for old, new in renamed.items()
        if k.startswith(old)
    }
    static.load_state_dict(state)
    x = images(2)
    with torch.no_grad():
        assert torch.allclose(static(x), model.routed(x, RoutingSpec.forced("easy"))[0], atol=1e-5)


def test_benchmark_baselines_are_static_rcnns_with_the_same_heads():
    from dydet.engine.benchmarks.candidates import default_baselines

    yaml = {"family": "rcnn", "nc": NC, "depth": 50, "dynamic": {}, "detector": {"rpn_post_nms_top_n_test": 50}}
    baselines = default_baselines(RCNNDetectionModel(yaml, verbose=False))
    assert [b.depth for b in baselines] == [50, 101] and all(isinstance(b, StaticRCNN) for b in baselines)
    assert all(b.rpn._post_nms_top_n["testing"] == 50 for b in baselines)
