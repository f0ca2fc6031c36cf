"""A small BERT encoder in plain torch, for frozen sentence encoders such as all-MiniLM-L6-v2.

Architecture from Devlin et al. 2019 ("BERT", sec. 3) on the Transformer encoder of Vaswani et al.
2017 (sec. 3.1-3.3): the input is the sum of word, learned absolute position and token-type
(segment) embeddings, layer-normalised; each of N layers is multi-head self-attention and a GELU
feed-forward block (Hendrycks & Gimpel 2016, exact erf form), each wrapped as
``LayerNorm(x + sublayer(x))`` (post-LN, as in the original Transformer and BERT).

Only inference is supported (no dropout, no gradients needed). Weights are read strictly from a
``model.safetensors`` in the Hugging Face BERT layout and tokenisation uses the ``tokenizers``
library with the model's ``tokenizer.json``, so neither ``transformers`` nor
``sentence_transformers`` is imported: importing ``transformers`` alone takes seconds, which
dominated a cold ``audiodiff generate`` on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture fields of a Hugging Face BERT ``config.json`` (other keys are ignored:
    the file is a third-party format with many training-only fields)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"BertConfig.{f.name} must be positive, got {getattr(self, f.name)}")

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        raw = json.loads(Path(path).read_text())
        # Refuse variants this module does not implement rather than computing something else.
        expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
        for key, want in expected.items():
            got = raw.get(key, want)
            if got != want:
                raise ValueError(f"{path}: {key} is {got!r}; this BERT implementation supports only {want!r}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw]
        if missing:
            raise ValueError(f"{path}: missing BERT config keys {missing}")
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})


class BertLayer(nn.Module):
    """One post-LN Transformer encoder layer: attention block, then feed-forward block."""

    def __init__(self, config: BertConfig, device: torch.device | str | None = None):
        super().__init__()
        d, eps, f = config.hidden_size, config.layer_norm_eps, config.intermediate_size
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(d, 3 * d, device=device)  # query, key and value projections in one matmul
        self.attn_out = nn.Linear(d, d, device=device)
        self.attn_norm = nn.LayerNorm(d, eps=eps, device=device)
        self.ff_in = nn.Linear(d, f, device=device)
        self.ff_out = nn.Linear(f, d, device=device)
        self.ff_norm = nn.LayerNorm(d, eps=eps, device=device)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """x (B, L, D); attend (B, 1, 1, L) bool, True for keys that may be attended to -> (B, L, D)."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(d_head)) v with padded keys excluded (Vaswani et al. eq. 1; SDPA's
        # default scale is 1/sqrt(d_head)).
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, length, d)))
        return self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))


class BertEncoder(nn.Module):
    """Token ids -> contextual token embeddings (the last layer's hidden states)."""

    def __init__(self, config: BertConfig, device: torch.device | str | None = None):
        super().__init__()
        self.config = config
        d = config.hidden_size
        # Plain tables read with F.embedding: the encoder is only ever loaded, and nn.Embedding's
        # normal_ init on the meta device imports torch._dynamo (seconds on a laptop CPU).
        self.word_embed = nn.Parameter(torch.empty(config.vocab_size, d, device=device))
        self.position_embed = nn.Parameter(torch.empty(config.max_position_embeddings, d, device=device))
        self.type_embed = nn.Parameter(torch.empty(config.type_vocab_size, d, device=device))
        self.embed_norm = nn.LayerNorm(d, eps=config.layer_norm_eps, device=device)
        self.layers = nn.ModuleList(BertLayer(config, device) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, L) int64; attention_mask (B, L), nonzero for real tokens ->
        hidden (B, L, D) float; rows at padded positions are not meaningful."""
        length = input_ids.shape[1]
        if length > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {length} tokens is longer than the encoder's "
                             f"max_position_embeddings ({self.config.max_position_embeddings})")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = (F.embedding(input_ids, self.word_embed) + self.position_embed[:length]
             + F.embedding(token_type_ids, self.type_embed))
        x = self.embed_norm(x)
        attend = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attend)
        return x


# Hugging Face BertModel key names -> ours (layer keys under "encoder.layer.{i}." -> "layers.{i}.").
_EMBEDDING_KEYS = {
    "embeddings.word_embeddings.weight": "word_embed",
    "embeddings.position_embeddings.weight": "position_embed",
    "embeddings.token_type_embeddings.weight": "type_embed",
    "embeddings.LayerNorm.weight": "embed_norm.weight",
    "embeddings.LayerNorm.bias": "embed_norm.bias",
}
_LAYER_KEYS = {
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ff_in",
    "output.dense": "ff_out",
    "output.LayerNorm": "ff_norm",
}
_QKV = ("query", "key", "value")
# In the file but not used: the position-id buffer (positions are 0..L-1) and BERT's [CLS] pooler
# (sentence-transformers mean-pools the token embeddings instead).
_IGNORED_KEYS = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


def convert_bert_state_dict(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """A Hugging Face ``BertModel`` state dict -> :class:`BertEncoder`'s. Raises on any key that is
    missing or not recognised, naming them."""
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    ours, used = {}, set(_IGNORED_KEYS & state.keys())

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return state[key]

    missing = []
    for theirs, mine in _EMBEDDING_KEYS.items():
        if theirs in state:
            ours[mine] = take(theirs)
        else:
            missing.append(theirs)
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for theirs, mine in _LAYER_KEYS.items():
            for param in ("weight", "bias"):
                key = f"{p}{theirs}.{param}"
                if key in state:
                    ours[f"layers.{i}.{mine}.{param}"] = take(key)
                else:
                    missing.append(key)
        for param in ("weight", "bias"):
            keys = [f"{p}attention.self.{name}.{param}" for name in _QKV]
            absent = [k for k in keys if k not in state]
            if absent:
                missing.extend(absent)
            else:
                ours[f"layers.{i}.qkv.{param}"] = torch.cat([take(k) for k in keys])
    unexpected = sorted(state.keys() - used)
    if missing or unexpected:
        raise ValueError(f"BERT weights do not match the config ({num_layers} layers): "
                         f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                         f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    return ours


def load_bert(folder: str | Path, device: torch.device | str = "cpu") -> BertEncoder:
    """A frozen :class:`BertEncoder` in eval mode from ``config.json`` + ``model.safetensors``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = BertConfig.from_json(folder / "config.json")
    state = convert_bert_state_dict(load_file(folder / "model.safetensors"), config.num_hidden_layers)
    # Build on the meta device and assign the loaded tensors: skips a random init we would discard.
    model = BertEncoder(config, device="meta")
    own = model.state_dict()
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            raise ValueError(f"{folder / 'model.safetensors'}: {key} has shape {tuple(tensor.shape)}, "
                             f"the config implies {tuple(own[key].shape)}")
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False).to(device)


class BertTokenizer:
    """``tokenizer.json`` -> padded id batches, with [CLS] ... [SEP] added by the file's own
    post-processor and truncation (keeping [SEP]) at ``max_tokens`` in total."""

    def __init__(self, path: str | Path, max_tokens: int):
        from tokenizers import Tokenizer

        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}")
        self.tokenizer = Tokenizer.from_file(str(path))
        # The file pads every input to a fixed 128 and truncates at 128; we pad to the longest in
        # the batch ourselves and truncate at our own limit.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        if pad_id is None:
            raise ValueError(f"{path}: the vocabulary has no [PAD] token")
        self.pad_id = pad_id

    def __call__(self, prompts: list[str]) -> tuple[dict[str, torch.Tensor], list[bool]]:
        """-> ({input_ids, token_type_ids, attention_mask}: (B, L) int64, truncated per prompt)."""
        if not prompts:
            raise ValueError("no prompts to tokenise")
        # One encode per prompt rather than encode_batch: prompts are few and short, and this keeps
        # the tokenizer's thread pool unused, so later fork()s (data loaders) stay warning-free.
        encodings = [self.tokenizer.encode(p) for p in prompts]
        length = max(len(e.ids) for e in encodings)
        batch = {name: torch.full((len(prompts), length), fill, dtype=torch.long)
                 for name, fill in (("input_ids", self.pad_id), ("token_type_ids", 0), ("attention_mask", 0))}
        for i, e in enumerate(encodings):
            n = len(e.ids)
            batch["input_ids"][i, :n] = torch.tensor(e.ids)
            batch["token_type_ids"][i, :n] = torch.tensor(e.type_ids)
            batch["attention_mask"][i, :n] = torch.tensor(e.attention_mask)
        return batch, [bool(e.overflowing) for e in encodings]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence-BERT pooling (Reimers & Gurevych 2019): mean over real tokens, L2-normalised.
    hidden (B, L, D), mask (B, L) bool -> (B, D) unit vectors."""
    m = mask[..., None].to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)


__all__ = ["BertConfig", "BertEncoder", "BertTokenizer", "convert_bert_state_dict", "load_bert", "mean_pool"]
