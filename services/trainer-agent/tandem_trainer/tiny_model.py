"""A tiny causal LM over a byte vocabulary, small enough for CPU tests yet
a real torch model: the trainer trains it, the test receiver generates with
it, and weight syncs move its parameters. Vocabulary as the simulated
generator's tokenizer: 0 pad, 1 BOS, 2 EOS, byte b -> b + 3."""

from __future__ import annotations

import hashlib
from typing import Iterable

import torch
from torch import nn

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
VOCAB_SIZE = 256 + 3


def encode_text(text: str) -> list[int]:
    return [b + 3 for b in text.encode("utf-8")]


def decode_ids(ids: Iterable[int]) -> str:
    return bytes(i - 3 for i in ids if 3 <= i < VOCAB_SIZE).decode("utf-8", errors="replace")


class TinyLM(nn.Module):
    """p(x_t | x_{t-1}): embedding -> tanh MLP -> logits (a bigram model)."""

    def __init__(self, vocab_size: int = VOCAB_SIZE, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits for the token after each position: [..., T, V]."""
        return self.out(torch.tanh(self.hidden(self.embed(input_ids))))

    def token_logprobs(self, input_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """``out[:, t] = log p(input_ids[:, t] | input_ids[:, t-1])`` for t >= 1
        (temperature-processed, like vLLM's ``processed_logprobs``); 0 at t=0."""
        logits = self.forward(input_ids[:, :-1]) / max(temperature, 1e-6)
        lp = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return torch.cat([torch.zeros_like(lp[:, :1]), lp], dim=1)


def make_tiny_model(seed: int = 0, dim: int = 32) -> TinyLM:
    """The same initial weights for the same seed (trainer and receivers)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return TinyLM(dim=dim)
    finally:
        torch.random.set_rng_state(gen_state)


def param_checksum(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in order: equal checksums
    mean bit-identical parameters."""
    h = hashlib.sha256()
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def sample(
    model: TinyLM,
    prompt_ids: list[int],
    max_tokens: int,
    temperature: float,
    generator: torch.Generator,
    before_token: "callable[[], None] | None" = None,  # type: ignore[valid-type]  # plain hook
) -> tuple[list[int], list[float], str]:
    """Samples up to ``max_tokens`` tokens; returns ids, logprobs (of the
    processed distribution) and vLLM's finish_reason. ``before_token`` runs
    before each token (the receiver blocks there while paused)."""
    last = prompt_ids[-1] if prompt_ids else BOS_ID
    ids: list[int] = []
    lps: list[float] = []
    for _ in range(max_tokens):
        if before_token is not None:
            before_token()
        logits = model.forward(torch.tensor([last]))[0]
        if temperature <= 0:
            logp = torch.log_softmax(logits, dim=-1)
            tok = int(torch.argmax(logp))
        else:
            logp = torch.log_softmax(logits / temperature, dim=-1)
            tok = int(torch.multinomial(logp.exp(), 1, generator=generator))
        ids.append(tok)
        lps.append(max(float(logp[tok]), -9999.0))  # vLLM clamps at -9999
        if tok == EOS_ID:
            return ids, lps, "stop"
        last = tok
    return ids, lps, "length"
