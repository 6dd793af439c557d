"""The estimator's lexical branch: math-aware normalisation and stateless hashed n-grams.

Every feature here is a pure function of the text (no vocabulary, no fitted state), so the
offline fit and the online learner compute identical features for a prompt nobody has seen yet.
`normalize_math` makes equivalent LaTeX read the same and buckets numbers above 10 by magnitude
(small numbers stay themselves: they often name the problem's structure). `hashed_ngrams` is
sign-free feature hashing (Weinberger et al. 2009, "Feature hashing for large scale multitask
learning") of word 1-2 grams of the normalised text and character 2-5 grams (within word
boundaries) of the raw text, with sublinear term frequency, each block unit norm:

    x = [ l2(1 + log tf_word(normalize_math(t))),  l2(1 + log tf_char(t)) ] / sqrt(2)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)
_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|emph|operatorname)\s*\{([^{}]*)\}")
_NUMBER = re.compile(r"(?<![A-Za-z_])\d+(?:,\d{3})*(?:\.\d+)?")
_COMMAND = re.compile(r"\\[A-Za-z]+|\\[!,;:]")
_DROP = {r"\left", r"\right", r"\displaystyle", r"\limits", r"\Bigl", r"\Bigr", r"\Big", r"\big", r"\bigl",
         r"\bigr", r"\allowbreak", r"\smallskip", r"\medskip", r"\noindent", r"\!", r"\,", r"\;", r"\:",
         r"\quad", r"\qquad", r"\hline"}
_SAME = {r"\dfrac": r"\frac", r"\tfrac": r"\frac", r"\cfrac": r"\frac", r"\dbinom": r"\binom", r"\le": r"\leq",
         r"\ge": r"\geq", r"\ne": r"\neq", r"\cdot": r"\times", r"\ast": "*", r"\ldots": r"\dots",
         r"\cdots": r"\dots", r"\dotsm": r"\dots", r"\dotsb": r"\dots", r"\lvert": "|", r"\rvert": "|",
         r"\mathbf": "", r"\bold": "", r"\mathit": ""}
WORD_TOKENS = r"\\?[A-Za-z]+\d*|\d+|[^\sA-Za-z\d]"
"""Word tokens: words (and number buckets such as `numi3`), LaTeX commands, numbers, single symbols."""


def number_token(number: str) -> str:
    """A magnitude bucket of a literal number: 0..10 stay themselves, other integers become
    numi{digits}, decimals numdec ("12" -> "numi2", "2019" -> "numi4", "0.25" -> "numdec")."""
    if "." in number:
        return " numdec "
    digits = number.replace(",", "")
    if len(digits) <= 2 and int(digits) <= 10:
        return f" {int(digits)} "
    return f" numi{min(len(digits.lstrip('0') or '0'), 9)} "


def normalize_math(text: str) -> str:
    """`[asy]` drawings become one token, `\\text{w}` becomes w, `$` and sizing/spacing commands go,
    synonyms are unified, commands, braces and operators become tokens, numbers become magnitude
    buckets; lower case, whitespace collapsed."""
    text = _ASY.sub(" asyblock ", text)
    text = _TEXT.sub(r" \1 ", text)
    for mark in ("$", "\\[", "\\]", "\\(", "\\)"):
        text = text.replace(mark, " ")
    text = _COMMAND.sub(lambda m: " " if m.group(0) in _DROP else f" {_SAME.get(m.group(0), m.group(0))} ", text)
    text = _NUMBER.sub(lambda m: number_token(m.group(0)), text)
    text = re.sub(r"([{}()\[\]^_=+\-*/<>|!,.?:;])", r" \1 ", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def hashed_ngrams(texts: Sequence[str], bits: int = 18) -> sp.csr_matrix:
    """(n, 2 * 2**bits) unit-norm lexical vectors (module doc); 2**bits buckets per block."""
    texts = list(texts)
    common = dict(n_features=2**bits, alternate_sign=False, norm=None, lowercase=False, dtype=np.float64)
    words = HashingVectorizer(analyzer="word", token_pattern=WORD_TOKENS, ngram_range=(1, 2), **common)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common)
    blocks = []
    for vectorizer, inputs in ((words, [normalize_math(t) for t in texts]), (chars, texts)):
        counts = vectorizer.transform(inputs).tocsr()
        counts.data = 1.0 + np.log(counts.data)
        blocks.append(normalize(counts))
    return (sp.hstack(blocks).tocsr() / np.sqrt(2.0)).tocsr()
