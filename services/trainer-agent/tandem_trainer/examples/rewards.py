"""Example reward functions with TRL's signature (``prompts, completions,
**kwargs -> list[float | None]``), served by the agent's reward endpoint.
They accept completions in either form the endpoint passes: chat messages
(``[{"role": "assistant", "content": text}]``, the default, as TRL does) or
plain strings (``TANDEM_REWARD_FORMAT=text``)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

Completion = Union[str, Sequence[dict[str, Any]]]


def completion_text(completion: Completion) -> str:
    """The text of a completion: the string itself, or the content of its last message."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1]["content"]) if completion else ""


def digit_fraction(prompts: Sequence[Any], completions: Sequence[Completion], **kwargs: Any) -> list[Optional[float]]:
    """Share of characters that are digits; None (not applicable) for a
    completion without any digit. Where every function returns None, the
    endpoint answers null and the completion trains as ``unscored``."""
    texts = [completion_text(c) for c in completions]
    return [sum(ch.isdigit() for ch in c) / len(c) if any(ch.isdigit() for ch in c) else None for c in texts]


def contains_answer(prompts: Sequence[Any], completions: Sequence[Completion], answers: Sequence[Optional[str]], **kwargs: Any) -> list[Optional[float]]:
    """1.0 when the reference answer appears in the completion; None (not
    applicable) for prompts without an answer."""
    return [None if a is None else float(a in completion_text(c)) for c, a in zip(completions, answers)]


def length_penalty(prompts: Sequence[Any], completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """-len/100: prefers shorter completions."""
    return [-len(completion_text(c)) / 100.0 for c in completions]
