import numpy as np
import torch

from dydet.nn.modules import hard_mask


def test_hard_mask_is_one_rule_for_tensors_and_arrays():
    scores = [0.0, 0.3, 0.5, 0.7, 1.0]
    for make in (torch.tensor, np.array):
        s = make(scores)
        cases = {0.0: [0, 0, 0, 0, 0], 0.5: [1, 1, 0, 0, 0], 0.99: [1, 1, 1, 1, 0], 1.0: [1, 1, 1, 1, 1]}
        for threshold, want in cases.items():
            got = hard_mask(s, threshold)
            assert isinstance(got, type(s)) and got.dtype in (torch.bool, np.bool_)
            assert [int(v) for v in got.tolist()] == want, (make, threshold)  # easy if score >= threshold; 1: all hard
