"""Whether routing pays on a validation run: the hard route must beat the easy one, and the router random routing.

A dynamic model is only worth its second route if that route is more accurate and the router knows which images need
it. When a validation run shows otherwise, thresholds and budgets still work but trade cost for nothing, so dydet says
so in one line, with what to do (`payoff_warning`), after stage 1, after calibration and in every `val`.
"""

from __future__ import annotations

# Below this gain (mAP50-95) of the hard route over the easy one, routing cannot pay: a gain of this size is within
# the noise of a validation split of a few hundred images, and so is any share of it that a router recovers.
MIN_HARD_GAIN = 0.005


def payoff_warning(
    easy: float, hard: float, router: float | None = None, random: float | None = None, where: str = "here"
) -> str | None:
    """Return one line saying that routing does not pay, and what to do; None when it does.

    Args:
        easy (float): mAP50-95 of the easy route alone.
        hard (float): mAP50-95 of the hard route alone.
        router (float, optional): mAP50-95 of the router's routing at a 50/50 split.
        random (float, optional): mAP50-95 of random routing at the same split.
        where (str): Where the figures come from, e.g. 'after stage 1'.

    Returns:
        (str | None): The warning, or None.
    """
    gain = hard - easy
    if gain < MIN_HARD_GAIN:
        return (
            f"routing does not pay {where}: the hard route (mAP50-95 {hard:.4f}) is not better than the easy route "
            f"({easy:.4f}, {gain:+.4f}), so every image sent hard costs more for nothing; train longer or on more "
            "data, or start from a trained static model (pretrained=), before relying on thresholds"
        )
    if router is not None and random is not None and router <= random:
        return (
            f"the router does not beat random routing {where}: at a 50/50 split mAP50-95 {router:.4f} vs "
            f"{random:.4f} at random; train the router longer or at a lower lr (stage2_epochs=, stage2_lr=), or "
            "validate on more images (small splits cannot resolve the difference)"
        )
    return None
