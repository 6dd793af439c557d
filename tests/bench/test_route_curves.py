"""Routing curves: accuracy at a share of queries sent to the small model, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from depo.bench.route_curves import accuracy_at_share, random_curve
from depo.errors import DepoError


def test_curves_hand_worked():
    ps = np.array([1.0, 0.0, 0.5, 0.2])
    pl = np.array([1.0, 1.0, 0.5, 0.6])
    score = np.array([0.9, 0.8, 0.1, 0.1])  # ties at 0.1 broken by row order
    points = [accuracy_at_share(score, ps, pl, s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert [p.share for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # large only 0.775; send row 0 (no loss); then row 1 (loses 1.0); then row 2 (no loss); then row 3 (0.4)
    assert [p.accuracy for p in points] == pytest.approx([0.775, 0.775, 0.525, 0.525, 0.425])
    assert accuracy_at_share(score, ps, pl, 0.5).knob == 0.8
    rnd = random_curve(ps, pl, [0.0, 0.5, 1.0])
    assert [p.accuracy for p in rnd] == pytest.approx([0.775, 0.6, 0.425])
    with pytest.raises(DepoError):
        accuracy_at_share(score, ps, pl[:2], 0.5)
