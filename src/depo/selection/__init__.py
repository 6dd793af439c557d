"""Prompt selection: which prompts to roll out before generation."""

from depo.selection.base import Candidate, GroupOutcome, Selector, Uniform, is_zero_variance

__all__ = ["Candidate", "GroupOutcome", "Selector", "Uniform", "is_zero_variance"]
