import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

import statistics

import pytest
import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules import Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.loss import v8DetectionLoss

from dydet.utils.loss import DualDetectionLoss, PerImageDetectionLoss, RouterLoss, RunningMedian

IMGSZ = 96
NC = 3
BOXES_PER_IMAGE = (6, 1, 0, 3, 0)  # many, one and zero objects
ATOL = 1e-5


def make_model(seed: int) -> DetectionModel:
    torch.manual_seed(seed)
    model = DetectionModel("yolo11n.yaml", nc=NC, verbose=False)
    model.args = get_cfg(DEFAULT_CFG)  # what DetectionTrainer.set_model_attributes does
    return model.train()


def make_batch(counts=BOXES_PER_IMAGE, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch_idx = torch.cat([torch.full((n,), float(i)) for i, n in enumerate(counts)])
    n = batch_idx.numel()
    # Large boxes so that several images have a normaliser above 1 (see test_fixture_is_discriminative)
    xy = torch.rand(n, 2, generator=g) * 0.4 + 0.3
    wh = torch.rand(n, 2, generator=g) * 0.5 + 0.3
    return {
        "batch_idx": batch_idx,
        "cls": torch.randint(0, NC, (n, 1), generator=g).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }


def make_images(bs: int, seed: int = 2) -> torch.Tensor:
    return torch.rand(bs, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(seed))


def select(preds: dict, idx) -> dict:
    """Index the batch dimension of a training-mode Detect output."""
    return {"boxes": preds["boxes"][idx], "scores": preds["scores"][idx], "feats": [f[idx] for f in preds["feats"]]}


def image_batch(batch: dict, i: int) -> dict:
    """Labels of image i alone, as a batch of one."""
    keep = batch["batch_idx"] == i
    return {"batch_idx": batch["batch_idx"][keep] * 0, "cls": batch["cls"][keep], "bboxes": batch["bboxes"][keep]}


def stock_per_image(model, preds: dict, batch: dict) -> torch.Tensor:
    """Reference: the stock loss of every image run as a batch of one."""
    stock = v8DetectionLoss(model)
    bs = preds["boxes"].shape[0]
    return torch.stack([stock.loss(select(preds, slice(i, i + 1)), image_batch(batch, i))[0] for i in range(bs)])


@pytest.fixture(scope="module")
def model():
    return make_model(0)


@pytest.fixture(scope="module")
def hard_model():
    return make_model(1)


@pytest.fixture
def batch():
    return make_batch()


def test_fixture_is_discriminative(model, batch):
    # A batch-normalised loss equals the per-image one only when every normaliser clamps to 1.
    preds = model(make_images(len(BOXES_PER_IMAGE)))
    a = PerImageDetectionLoss(model).assign(preds, batch)
    norms = a.target_scores.sum((1, 2))
    assert (norms > 1).sum() >= 2
    assert a.fg_mask[[2, 4]].sum() == 0 and a.fg_mask[0].sum() > 0


def test_per_image_equals_batch_of_one(model, batch):
    preds = model(make_images(len(BOXES_PER_IMAGE)))
    rows = PerImageDetectionLoss(model).per_image(preds, batch)
    ref = stock_per_image(model, preds, batch)
    assert rows.shape == (len(BOXES_PER_IMAGE), 3)
    diff = (rows - ref).abs().max().item()
    print(f"max abs diff per_image vs batch-of-one stock: {diff:.3e}")
    torch.testing.assert_close(rows, ref, rtol=1e-5, atol=ATOL)
    # Images without objects: only the cls term
    assert rows[[2, 4]][:, [0, 2]].abs().max() == 0 and (rows[[2, 4], 1] > 0).all()
    # And it is not the batch-normalised loss spread over images
    batch_loss = v8DetectionLoss(model).loss(preds, batch)[0] / len(BOXES_PER_IMAGE)
    assert not torch.allclose(rows.mean(0), batch_loss, rtol=1e-3)


def test_per_image_permutation_equivariant(model, batch):
    bs = len(BOXES_PER_IMAGE)
    preds = model(make_images(bs))
    crit = PerImageDetectionLoss(model)
    rows = crit.per_image(preds, batch)

    perm = torch.tensor([3, 0, 4, 1, 2])  # new image j is old image perm[j]
    inverse = torch.argsort(perm)
    order = torch.argsort(inverse[batch["batch_idx"].long()], stable=True)
    permuted_batch = {
        "batch_idx": inverse[batch["batch_idx"].long()][order].float(),
        "cls": batch["cls"][order],
        "bboxes": batch["bboxes"][order],
    }
    permuted = crit.per_image(select(preds, perm), permuted_batch)
    torch.testing.assert_close(permuted, rows[perm], rtol=1e-5, atol=ATOL)


def test_per_image_assigns_once_for_the_whole_batch(model, batch, monkeypatch):
    bs = len(BOXES_PER_IMAGE)
    crit = PerImageDetectionLoss(model)
    calls = []
    forward = crit.assigner.forward

    def counting(pd_scores, *args, **kwargs):
        calls.append(pd_scores.shape[0])
        return forward(pd_scores, *args, **kwargs)

    monkeypatch.setattr(crit.assigner, "forward", counting)
    crit.per_image(model(make_images(bs)), batch)
    assert calls == [bs]


def test_per_image_without_any_labels(model):
    bs = 3
    preds = model(make_images(bs))
    empty = {"batch_idx": torch.zeros(0), "cls": torch.zeros(0, 1), "bboxes": torch.zeros(0, 4)}
    rows = PerImageDetectionLoss(model).per_image(preds, empty)
    ref = stock_per_image(model, preds, empty)
    torch.testing.assert_close(rows, ref, rtol=1e-5, atol=ATOL)
    assert rows[:, [0, 2]].abs().max() == 0 and (rows[:, 1] > 0).all()


def test_per_image_eval_tuple_and_gradients(model, batch):
    preds = model(make_images(len(BOXES_PER_IMAGE)))
    crit = PerImageDetectionLoss(model)
    rows = crit.per_image(preds, batch)
    torch.testing.assert_close(crit.per_image((torch.zeros(1), preds), batch), rows)
    model.zero_grad()
    rows[0].sum().backward()  # image 0 only: its own boxes, cls and dfl terms
    head = model.model[-1]
    assert head.cv2[0][-1].weight.grad.abs().sum() > 0  # box branch
    assert head.cv3[0][-1].weight.grad.abs().sum() > 0  # cls branch
    model.zero_grad()


def test_per_image_l1_branch_without_dfl():
    # reg_max == 1 heads use an image-size-normalised L1 term in place of DFL
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            head = Detect(nc=NC, reg_max=1, ch=(8, 16, 32))
            head.stride = torch.tensor([8.0, 16.0, 32.0])
            self.model = nn.ModuleList([head])
            self.args = get_cfg(DEFAULT_CFG)

    torch.manual_seed(0)
    tiny = Tiny().train()
    bs = len(BOXES_PER_IMAGE)
    feats = [torch.randn(bs, c, IMGSZ // s, IMGSZ // s) for c, s in ((8, 8), (16, 16), (32, 32))]
    preds = tiny.model[0](feats)
    preds["boxes"] = preds["boxes"].abs() * 3  # plausible positive ltrb distances
    batch = make_batch()
    crit = PerImageDetectionLoss(tiny)
    assert crit.bbox_loss.dfl_loss is None
    rows = crit.per_image(preds, batch)
    torch.testing.assert_close(rows, stock_per_image(tiny, preds, batch), rtol=1e-5, atol=ATOL)
    assert rows[0, 2] > 0


def dual_preds(model, hard_model, bs: int, score: torch.Tensor | None = None) -> dict:
    x = make_images(bs)
    out = {"easy": model(x), "hard": hard_model(x)}
    out["score"] = torch.full((bs,), 0.5) if score is None else score
    return out


def test_dual_detection_loss(model, hard_model, batch):
    bs = len(BOXES_PER_IMAGE)
    preds = dual_preds(model, hard_model, bs)
    loss, items = DualDetectionLoss(hard_model)(preds, batch)
    assert list(items) == ["e_box_loss", "e_cls_loss", "e_dfl_loss", "h_box_loss", "h_cls_loss", "h_dfl_loss"]
    assert all(v.ndim == 0 and not v.requires_grad for v in items.values())

    stock = v8DetectionLoss(hard_model)
    easy, easy_items = stock(preds["easy"], batch)
    hard, hard_items = stock(preds["hard"], batch)
    torch.testing.assert_close(loss.sum(), easy.sum() + hard.sum())
    torch.testing.assert_close(torch.stack(list(items.values())), torch.cat((easy, hard)).detach() / bs)
    torch.testing.assert_close(items["h_dfl_loss"], hard_items["dfl_loss"])

    model.zero_grad()
    hard_model.zero_grad()
    loss.sum().backward()
    for m in (model, hard_model):
        assert m.model[-1].cv3[0][-1].weight.grad.abs().sum() > 0
        assert m.model[0].conv.weight.grad.abs().sum() > 0
    model.zero_grad()
    hard_model.zero_grad()

    # Validator path: eval tuples per route, items accumulate as tensors
    eval_preds = {k: ((torch.zeros(1), v) if k != "score" else v) for k, v in preds.items()}
    _, eval_items = DualDetectionLoss(hard_model)(eval_preds, batch)
    torch.testing.assert_close(torch.stack(list(eval_items.values())), torch.stack(list(items.values())))


def test_router_gradient_is_loss_gap_minus_delta(model, hard_model, batch):
    bs = len(BOXES_PER_IMAGE)
    score = torch.tensor([0.9, 0.2, 0.5, 0.7, 0.4], requires_grad=True)
    preds = dual_preds(model, hard_model, bs, score)
    crit = RouterLoss(hard_model, delta=0.25)
    loss, items = crit(preds, batch)
    model.zero_grad()
    hard_model.zero_grad()
    loss.sum().backward()

    l1, l2 = crit.route_losses(preds, batch)
    torch.testing.assert_close(score.grad, (l1 - l2) - 0.25)
    # Detection losses are detached: nothing reaches either detector
    for m in (model, hard_model):
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.parameters())
    assert not l1.requires_grad and not l2.requires_grad

    # The value is the documented objective, mean over images times batch size
    per_image = score * (l1 - 0.125) + (1 - score) * (l2 + 0.125)
    torch.testing.assert_close(loss.sum(), per_image.mean() * bs)
    torch.testing.assert_close(items["r_loss"], per_image.mean().detach())
    assert items["delta"].item() == pytest.approx(0.25)
    assert items["score"].item() == pytest.approx(0.54)
    assert items["hard"].item() == pytest.approx(2 / 5)


def test_router_route_losses_are_per_image_totals(model, hard_model, batch):
    bs = len(BOXES_PER_IMAGE)
    preds = dual_preds(model, hard_model, bs)
    l1, l2 = RouterLoss(hard_model).route_losses(preds, batch)
    torch.testing.assert_close(l1, stock_per_image(model, preds["easy"], batch).sum(1).detach())
    torch.testing.assert_close(l2, stock_per_image(hard_model, preds["hard"], batch).sum(1).detach())


def test_router_delta_is_running_median(model, hard_model, batch):
    bs = len(BOXES_PER_IMAGE)
    crit = RouterLoss(hard_model)
    seen = []
    for seed in (3, 4):
        score = torch.rand(bs, generator=torch.Generator().manual_seed(seed)).requires_grad_()
        x = make_images(bs, seed=seed)
        preds = {"easy": model(x), "hard": hard_model(x), "score": score}
        l1, l2 = crit.route_losses(preds, batch)
        seen += (l1 - l2).tolist()
        _, items = crit(preds, batch)
        assert len(crit.diffs) == len(seen)  # the current batch is included
        assert items["delta"].item() == pytest.approx(statistics.median(seen), abs=1e-6)
        loss, items = crit(preds, batch, update=False)  # Δ over history + this batch (again), not stored
        assert len(crit.diffs) == len(seen)
        assert items["delta"].item() == pytest.approx(statistics.median(seen + (l1 - l2).tolist()), abs=1e-6)
        loss.sum().backward()
        torch.testing.assert_close(score.grad, (l1 - l2) - items["delta"])

    # Validation: the validator runs under inference mode and must not grow the history
    with torch.inference_mode():
        x = make_images(bs, seed=5)
        preds = {"easy": model(x), "hard": hard_model(x), "score": torch.full((bs,), 0.5)}
        _, items = crit(preds, batch)
    assert len(crit.diffs) == len(seen)
    assert torch.isfinite(items["delta"])

    # Explicit eval switch, even with grad on and a trainable score
    crit.training = False
    x = make_images(bs, seed=6)
    crit({"easy": model(x), "hard": hard_model(x), "score": torch.rand(bs).requires_grad_()}, batch)
    assert len(crit.diffs) == len(seen)

    # Training grows it again, also after a validation pass
    crit.training = True
    crit({"easy": model(x), "hard": hard_model(x), "score": torch.rand(bs)}, batch)
    assert len(crit.diffs) == len(seen) + bs


def test_running_median():
    rm = RunningMedian(capacity=5)
    assert torch.isnan(rm.median())
    rm.update(torch.tensor([5.0, 1.0]))
    assert rm.median().item() == 3.0  # even count: mean of the middle two
    assert rm.median(torch.tensor([10.0])).item() == 5.0  # extra values count but are not stored
    assert len(rm) == 2
    rm.update(torch.tensor([2.0, 8.0, 9.0, 7.0, 6.0]))  # 7 values, capacity 5: keeps the last 5
    assert len(rm) == 5 and rm.count == 7
    assert sorted(rm.values.tolist()) == [2.0, 6.0, 7.0, 8.0, 9.0]
    assert rm.median().item() == 7.0
    rm.update(torch.arange(20.0))  # more than capacity at once
    assert sorted(rm.values.tolist()) == [15.0, 16.0, 17.0, 18.0, 19.0]

    # A history first filled under inference mode still accepts updates afterwards
    rm = RunningMedian(capacity=4)
    with torch.inference_mode():
        rm.update(torch.tensor([1.0, 2.0]))
    rm.update(torch.tensor([3.0]))
    assert rm.median().item() == 2.0
