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
    epoch ends after all n indices were returned once. `position` counts the indices of the
    current epoch returned so far.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if int(n) <= 0:
            raise DepoError(f"the training set is empty (n={n}): nothing to draw prompts from")
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next(self) -> int:
        if self.position >= self.n:
            self.epoch += 1
            self.position = 0
            self._perm = self._permutation(self.epoch)
        index = int(self._perm[self.position])
        self.position += 1
        return index

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch, "pos": self.position}

    def load_state_dict(self, state: dict) -> None:
        if int(state["n"]) != self.n:
            raise DepoError(f"checkpoint was made for a dataset of {state['n']} prompts, this one has {self.n}")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["pos"])
        self._perm = self._permutation(self.epoch)
