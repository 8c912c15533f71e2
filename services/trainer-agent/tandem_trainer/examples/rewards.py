"""Example reward functions with TRL's signature (``prompts, completions,
**kwargs -> list[float | None]``), served by the agent's reward endpoint."""

from __future__ import annotations

from typing import Any, Optional, Sequence


def digit_fraction(prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> list[float]:
    """Share of characters that are digits (a dense, deterministic signal)."""
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]


def contains_answer(prompts: Sequence[str], completions: Sequence[str], answers: Sequence[Optional[str]], **kwargs: Any) -> list[Optional[float]]:
    """1.0 when the reference answer appears in the completion; None (not
    applicable) for prompts without an answer."""
    return [None if a is None else float(a in c) for c, a in zip(completions, answers)]


def length_penalty(prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> list[float]:
    """-len/100: prefers shorter completions."""
    return [-len(c) / 100.0 for c in completions]
