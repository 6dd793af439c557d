"""The order in which a trainer meets its prompts: a seeded reshuffle every epoch.

Each epoch's permutation is a pure function of (seed, epoch), so the whole position is two
integers and a resumed run meets exactly the same prompts in the same order.
"""

from __future__ import annotations

import numpy as np

from depo.errors import DepoError


class DataOrder:
    """Endless stream of dataset indices 0..n-1, reshuffled (seeded) at every epoch.

    `epoch` is the epoch of the index `next()` returned last (0 before the first call); an
    epoch ends after all n indices were returned once.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if int(n) <= 0:
            raise DepoError(f"the training set is empty (n={n}): nothing to draw prompts from")
        self.n = int(n)
        self.seed = int(seed)
        self._epoch = 0
        self._pos = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def position(self) -> int:
        """How many indices of the current epoch were returned."""
        return self._pos

    def next(self) -> int:
        if self._pos >= self.n:
            self._epoch += 1
            self._pos = 0
            self._perm = self._permutation(self._epoch)
        index = int(self._perm[self._pos])
        self._pos += 1
        return index

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "epoch": self._epoch, "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        if int(state["n"]) != self.n:
            raise DepoError(f"checkpoint was made for a dataset of {state['n']} prompts, this one has {self.n}")
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])
        self._pos = int(state["pos"])
        self._perm = self._permutation(self._epoch)
