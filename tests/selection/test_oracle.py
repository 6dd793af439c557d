"""The oracle selector: keeps a prompt iff its true pass rate makes a zero-variance group unlikely."""

from __future__ import annotations

import numpy as np
import pytest

from depo.errors import DepoError
from depo.selection.oracle import Oracle
from depo.types import Candidate, GroupOutcome


def test_oracle_keeps_iff_true_zero_variance_probability_is_low() -> None:
    rates = {"easy": 0.97, "hard": 0.02, "mid": 0.5, "edge": 0.1}
    sel = Oracle(rates, group_size=8)
    # p^8 + (1-p)^8: easy 0.78, hard 0.85, mid 0.008, edge 0.43
    assert sel.select([Candidate(k, "") for k in rates]).keep == [False, False, True, True]
    assert Oracle(rates, group_size=8, threshold=0.4).select([Candidate("edge", "")]).keep == [False]
    assert Oracle(lambda pid: 0.5, group_size=8).select([Candidate("any", "")]).keep == [True]
    np.testing.assert_allclose(sel.select([Candidate("mid", ""), Candidate("hard", "")]).priority, [-(2 * 0.5**8), -(0.02**8 + 0.98**8)])
    with pytest.raises(DepoError, match="no true pass rate"):
        sel.select([Candidate("unknown", "")])
    m = sel.observe([GroupOutcome("mid", "", (1.0, 0.0)), GroupOutcome("easy", "", (1.0, 1.0))])
    assert m == {"select/effective_rate": 0.5}
