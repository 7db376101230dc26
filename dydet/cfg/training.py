"""Training settings that are not user arguments: the augmentation-off set, router training's, the R-CNN family's."""

# Ultralytics' augmentation arguments that change an image's geometry or colour, all off: images as inference sees
# them. Router training (`ROUTER_FIXED`) and the R-CNN family's defaults (`RCNN_TRAIN_DEFAULTS`) both use it.
AUGMENT_OFF = {
    "mosaic": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "close_mosaic": 0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "degrees": 0.0,
    "translate": 0.0,
    "scale": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
}

# Chosen on the embedded demo/bench data (see docs/ROUTER.md): the router is tiny and its inputs are frozen, so a
# constant AdamW lr of 1e-3 converges in a few epochs at ordinary batch sizes; the paper's 1e-5 (batch 1, 2 COCO
# epochs = ~230k steps) would not move it in the few hundred steps a small dataset gives.
ROUTER_DEFAULTS = {"epochs": 8, "lr0": 1e-3, "batch": 32}
# Fixed settings of router training: constant lr, no warmup, and images exactly as inference sees them (no mosaic,
# no augmentation at all). With Ultralytics' augmentation the scores drift towards "hard" until the sigmoid saturates
# and the ranking degrades; with flips alone, the last epoch's router recovers 59 % of the hard route's gain at a
# 50/50 split on the benchmark data instead of 63 % (docs/ROUTER.md: measurements and the likely mechanism).
ROUTER_FIXED = {
    "optimizer": "AdamW",
    "lrf": 1.0,
    "cos_lr": False,
    "warmup_epochs": 0.0,
    "weight_decay": 0.0,
    "copy_paste": 0.0,
    "fliplr": 0.0,
    "flipud": 0.0,
    "bgr": 0.0,
    **AUGMENT_OFF,
}

# Training defaults of the R-CNN family (a value the user gives wins): SGD as mmdet/torchvision train
# Faster R-CNN (0.02 at batch 16, here for batch 8), and no augmentation beyond flips.
RCNN_TRAIN_DEFAULTS = {
    "optimizer": "SGD",
    "lr0": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_bias_lr": 0.0,
    **AUGMENT_OFF,
}
