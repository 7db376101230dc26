"""Dy-YOLO26: two end-to-end (NMS-free) heads, each route equal to the static YOLO26 it extends."""

import pytest
import torch
from ultralytics.nn.modules import CBLinear
from ultralytics.nn.tasks import DetectionModel

from dydet.nn.checkpoint import load_checkpoint_dict
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.flops import static_gflops

from .test_tasks import assert_one_route_runs, mixed_threshold, varied_images


def tiny_dy26(nc: int = 3, end2end: bool = True) -> DynamicDetectionModel:
    torch.manual_seed(0)
    model = DynamicDetectionModel("dy-yolo26n.yaml", nc=nc, verbose=False).eval()
    torch.nn.init.normal_(model.router.reduce.weight, std=2.0)  # spread the scores: a varied batch routes both ways
    torch.nn.init.normal_(model.router.score.weight, std=2.0)
    model.end2end = end2end
    return model


def trained_like_bn(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():  # non-trivial BN statistics, as in a trained model, so a missed buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_both_heads_are_end_to_end_with_both_branches():
    model = tiny_dy26(end2end=False)
    assert model.end2end_heads and not model.end2end
    for head in model.heads:
        assert head.one2one_cv2 is not None and head.cv2 is not None and head.reg_max == 1
    model.end2end = True  # selects the one-to-one branch of *both* heads (stock code sets model[-1] only)
    assert all(head.end2end for head in model.heads) and model.end2end
    out = model.train()(varied_images(2))
    for route in ("easy", "hard"):
        assert set(out[route]) == {"one2many", "one2one"}
        assert out[route]["one2one"]["scores"].shape == (2, 3, 84)


@pytest.mark.parametrize("scale", "nsmlx")
def test_every_scale_builds_and_the_easy_route_costs_static_yolo26(scale):
    model = DynamicDetectionModel(f"dy-yolo26{scale}.yaml", verbose=False).eval()
    static = DetectionModel(f"yolo26{scale}.yaml", verbose=False).eval()
    summary = model.route_summary(640)
    assert summary["easy"]["params"] == sum(p.numel() for p in static.parameters())
    assert summary["easy"]["gflops"] == pytest.approx(static_gflops(static, 640), rel=1e-9)
    assert summary["hard"]["gflops"] > 1.5 * summary["easy"]["gflops"]
    model.end2end = True
    with torch.no_grad():
        for route in ("easy", "hard"):
            y, raw = model(torch.rand(1, 3, 64, 64), route=route)
            assert y.shape == (1, 84, 6)  # NMS-free: top max_det (here all 84 anchors) as x1 y1 x2 y2 score class


@pytest.mark.parametrize("end2end", [True, False])
def test_mixed_batch_matches_each_image_alone_through_its_route(end2end):
    model = tiny_dy26(end2end=end2end)
    x = varied_images(6)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        (y, raw), routing = model.routed(x, t)
        assert set(routing.routes) == {"easy", "hard"}
        for i, route in enumerate(routing.routes):
            yi, raw_i = model(x[i : i + 1], route=route)
            torch.testing.assert_close(y[i : i + 1], yi, rtol=1e-4, atol=1e-4)
            for branch in ("one2many", "one2one"):
                torch.testing.assert_close(raw[branch]["scores"][i : i + 1], raw_i[branch]["scores"])


def test_all_easy_batch_runs_no_b2_or_h2_module():
    assert_one_route_runs(tiny_dy26(), varied_images(4), "easy")


def test_pretrained_static_yolo26_makes_both_routes_equal_it(tmp_path):
    torch.manual_seed(3)
    static = trained_like_bn(DetectionModel("yolo26n.yaml", nc=5, verbose=False))
    path = tmp_path / "yolo26n.pt"
    torch.save({"model": static, "epoch": -1, "train_args": {}}, path)
    ckpt = load_checkpoint_dict(path)  # an Ultralytics checkpoint: loaded by its allow-list, no code run
    model = DynamicDetectionModel("dy-yolo26n.yaml", nc=5, verbose=False)
    model.load(ckpt, verbose=False)
    assert all(not m.conv.weight.any() and not m.conv.bias.any() for m in model.model if isinstance(m, CBLinear))
    model.eval(), static.eval()
    x = varied_images(2, 96)
    with torch.no_grad():
        for end2end in (False, True):  # one-to-many (+NMS) outputs and one-to-one (NMS-free) outputs alike
            static.end2end = model.end2end = end2end
            want = static(x)[0]
            for route in ("easy", "hard"):
                torch.testing.assert_close(model(x, route=route)[0], want, rtol=1e-4, atol=1e-4)
        # a routed mixed batch is the static YOLO26's NMS-free output for every image, whichever route it took
        x = varied_images(6, 96)
        (y, _), routing = model.routed(x, mixed_threshold(model, x))
        assert set(routing.routes) == {"easy", "hard"} and y.shape[-1] == 6
        torch.testing.assert_close(y, static(x)[0], rtol=1e-4, atol=1e-4)
    # another class count: only the class-logit convs of both branches stay random
    DynamicDetectionModel("dy-yolo26n.yaml", nc=2, verbose=False).load(ckpt, verbose=False)


def test_routed_output_is_the_static_end2end_heads_output_for_each_route():
    """A routed batch gives each image what a static YOLO26 built from that route's layers gives: NMS-free rows."""
    model = tiny_dy26()
    x = varied_images(6)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        (y, _), routing = model.routed(x, t)
        for i, route in enumerate(routing.routes):
            head = model.heads[0 if route == "easy" else 1]
            feats = model.run_tail(route, model.run_trunk(x[i : i + 1], score=False)[0])[1]["one2one"]["feats"]
            want = head.postprocess(head._inference(head.forward_head(feats, **head.one2one)).permute(0, 2, 1))
            torch.testing.assert_close(y[i : i + 1], want, rtol=1e-4, atol=1e-4)
    assert y.shape[-1] == 6 and torch.all(y[..., 4][:, :-1] >= y[..., 4][:, 1:])  # sorted by score, no NMS needed


def test_fuse_keeps_the_selected_branch_of_both_heads():
    model = tiny_dy26(end2end=True)
    x = varied_images(2)
    with torch.no_grad():
        before = {r: model(x, route=r)[0] for r in ("easy", "hard")}
        model.fuse(verbose=False)
        assert all(head.cv2 is None and head.one2one_cv2 is not None for head in model.heads)
        assert model.end2end
        for route, want in before.items():
            torch.testing.assert_close(model(x, route=route)[0], want, rtol=1e-4, atol=1e-4)


def test_musgd_boosts_the_class_branches_of_both_heads(tiny_data, tmp_path):
    from dydet.models.yolo.train import DynamicTrainer

    trainer = DynamicTrainer(overrides={"model": "dy-yolo26n.yaml", "data": str(tiny_data), "project": str(tmp_path)})
    trainer.data = {"nc": 3}
    model = DynamicDetectionModel("dy-yolo26n.yaml", nc=3, verbose=False)
    optimizer = trainer.build_optimizer(model, name="MuSGD", lr=0.01)
    boosted = {id(p) for g in optimizer.param_groups if g["lr"] == pytest.approx(0.03) for p in g["params"]}
    for head in model.heads:  # Ultralytics boosts model[-1] (the hard head) only; dydet gives the easy head the same
        for branch in (head.cv3, head.one2one_cv3):
            assert all(id(p) in boosted for p in branch.parameters())
    assert not any(id(p) in boosted for p in model.heads[0].cv2.parameters())
