"""The lexical branch: math-aware normalisation and unit-norm hashed n-grams."""

from __future__ import annotations

import numpy as np

from depo.estimator.lexical import hashed_ngrams, normalize_math


def test_equivalent_latex_reads_the_same() -> None:
    assert normalize_math(r"Find $\dfrac{1}{2} \le x$") == normalize_math(r"Find \frac{1}{2} \leq x")
    assert normalize_math("add 12 and 57") == normalize_math("add 31 and 80")  # one magnitude bucket
    assert normalize_math("add 12") != normalize_math("add 2019") and normalize_math("add 3") != normalize_math("add 4")


def test_vectors_are_unit_norm_and_stateless() -> None:
    texts = ["What is 2 + 2?", r"Compute $\int_0^1 x^2\,dx$.", "What is 2 + 2?"]
    x = hashed_ngrams(texts, 12)
    assert x.shape == (3, 2 * 2**12)
    np.testing.assert_allclose(np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()), 1.0)
    np.testing.assert_array_equal(x[0].toarray(), x[2].toarray())
    np.testing.assert_array_equal(hashed_ngrams(texts[:1], 12).toarray(), x[0].toarray())  # no fitted vocabulary
    assert (x[0] @ x[1].T).toarray()[0, 0] < 0.5
