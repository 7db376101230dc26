"""Losses of end-to-end (YOLO26) dynamic models: Ultralytics' E2E loss per route, and per image for the router."""

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.loss import E2ELoss

from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.loss import DualE2ELoss, PerImageDetectionLoss, PerImageE2ELoss, RouterLoss

from .test_loss import BOXES_PER_IMAGE, image_batch, make_batch, make_images

NC = 3


def select(preds: dict, idx) -> dict:
    """Index the batch dimension of an end-to-end Detect training output."""
    return {
        b: {"boxes": p["boxes"][idx], "scores": p["scores"][idx], "feats": [f[idx] for f in p["feats"]]}
        for b, p in preds.items()
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = DynamicDetectionModel("dy-yolo26n.yaml", nc=NC, verbose=False)
    m.args = get_cfg(DEFAULT_CFG)
    return m.train()


@pytest.fixture(scope="module")
def preds(model):
    return model(make_images(len(BOXES_PER_IMAGE)))


def test_stage_one_criterion_is_ultralytics_e2e_loss_of_each_route(model, preds):
    batch = make_batch()
    criterion = model.init_criterion()
    assert isinstance(criterion, DualE2ELoss)
    loss, items = criterion(preds, batch)
    stock = E2ELoss(model)  # what ultralytics' DetectionModel.init_criterion gives a YOLO26
    easy, easy_items = stock(preds["easy"], batch)
    hard, hard_items = stock(preds["hard"], batch)
    torch.testing.assert_close(loss, torch.cat((easy, hard)))
    assert list(items) == ["e_box_loss", "e_cls_loss", "e_dfl_loss", "h_box_loss", "h_cls_loss", "h_dfl_loss"]
    torch.testing.assert_close(torch.stack(list(items.values())[3:]), torch.stack(list(hard_items.values())))
    # the one-to-many weight decays per epoch (the trainer calls `update`), for both routes at once
    for _ in range(3):
        criterion.update(), stock.update()
    assert criterion.o2m == stock.o2m < 0.8
    torch.testing.assert_close(criterion(preds, batch)[0][:3], stock(preds["easy"], batch)[0])


def test_per_image_e2e_loss_equals_the_batch_of_one_loss(model, preds):
    batch = make_batch()
    crit = PerImageE2ELoss(model)
    crit.update()  # any weights: rows follow them
    rows = crit.per_image(preds["hard"], batch)
    stock = E2ELoss(model)
    stock.update()
    want = torch.stack(
        [stock(select(preds["hard"], slice(i, i + 1)), image_batch(batch, i))[0] for i in range(len(BOXES_PER_IMAGE))]
    )
    assert rows.shape == (len(BOXES_PER_IMAGE), 3)
    torch.testing.assert_close(rows, want, rtol=1e-5, atol=1e-5)
    batch_mean = stock(preds["hard"], batch)[0] / len(BOXES_PER_IMAGE)  # not a batch loss spread over the images
    assert not torch.allclose(rows.mean(0), batch_mean, rtol=1e-3)


def test_router_loss_uses_the_per_image_loss_of_the_branch_nms_inference_reads(model, preds):
    batch = make_batch()
    model.stage = 2
    try:
        router = model.init_criterion()
    finally:
        model.stage = 0
    assert isinstance(router, RouterLoss) and isinstance(router.route_criterion, PerImageE2ELoss)
    assert (router.route_criterion.o2m, router.route_criterion.o2o) == (1.0, 0.0)
    l1, l2 = router.route_losses(preds, batch)
    branch = PerImageDetectionLoss(model, tal_topk=10)  # the one-to-many branch's criterion, as E2ELoss builds it
    torch.testing.assert_close(l1, branch.per_image(preds["easy"]["one2many"], batch).sum(1))
    torch.testing.assert_close(l2, branch.per_image(preds["hard"]["one2many"], batch).sum(1))
    mixed = PerImageE2ELoss(model)  # stage 1's mix (0.8 / 0.2 at its start) differs: the test can tell them apart
    assert not torch.allclose(l2, mixed.per_image(preds["hard"], batch).sum(1))
    one2one = PerImageE2ELoss(model).of_branch("one2one").per_image(preds["hard"], batch)
    torch.testing.assert_close(one2one, mixed.one2one.per_image(preds["hard"]["one2one"], batch))
    router.updates = 3  # what Ultralytics' resume does to an end-to-end model's criterion: must not fail
    router.update()
    score = torch.full((len(BOXES_PER_IMAGE),), 0.5, requires_grad=True)
    loss, items = router({**preds, "score": score}, batch, update=False)
    loss.backward()
    assert score.grad is not None and torch.isfinite(score.grad).all()
