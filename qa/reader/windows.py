"""Token windows: (question, text) pairs cut into overlapping windows of the model's tokens,
with each token's character offsets in its text."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from qa.errors import NewsQAError

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class Windows:
    """Token windows of (question, text) pairs, padded to one length, as a model reads them."""

    inputs: dict[str, np.ndarray]  # input_ids, attention_mask, token_type_ids: int64 [w, tokens]
    pairs: list[int]  # the (question, text) pair that each window reads
    offsets: list[list[tuple[int, int]]]  # each token's character span in its pair's text
    context: np.ndarray  # bool [w, tokens]: the token is part of the text (not question/special)


class Windower:
    """Cuts (question, text) pairs into overlapping windows of the model's tokens.

    The model's fast tokenizer (``tokenizer.json``) runs through the ``tokenizers`` library:
    the same windows as transformers' tokenizer with ``truncation="only_second"``, a stride,
    overflowing windows and padding to the longest (a test compares them), without importing
    transformers or torch.
    """

    def __init__(self, model_dir: Path, max_length: int, stride: int) -> None:
        path = model_dir / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"it has no {TOKENIZER_FILE} (a fast tokenizer), which "
                                    "character offsets need")
        config_path = model_dir / "tokenizer_config.json"
        config = (json.loads(config_path.read_text(encoding="utf-8"))
                  if config_path.is_file() else {})
        limit = config.get("model_max_length")
        if limit is not None and max_length > limit:
            raise NewsQAError(f"The reader max_length {max_length} exceeds the model's limit of "
                              f"{limit} tokens.")
        self._plain = _load_tokenizer(path)
        self._plain.no_truncation()
        self._plain.no_padding()
        pad = config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        pad_id = self._plain.token_to_id(pad) if isinstance(pad, str) else None
        if pad_id is None:
            raise ValueError(f"its tokenizer has no padding token ({config_path.name})")
        self._pairs = _load_tokenizer(path)
        self._pairs.enable_truncation(max_length, stride=stride, strategy="only_second")
        self._pairs.enable_padding(pad_id=pad_id, pad_token=pad,
                                   pad_type_id=config.get("pad_token_type_id", 0))
        self.question_room = (max_length - stride - 1
                              - self._plain.num_special_tokens_to_add(True))

    def question_tokens(self, question: str) -> int:
        """How many tokens ``question`` takes in a window."""
        return len(self._plain.encode(question, add_special_tokens=False).ids)

    def windows(self, questions: Sequence[str], texts: Sequence[str]) -> Windows:
        """Every window of each (question, text) pair; a long text gives several, overlapping
        by ``stride`` tokens."""
        encodings = self._pairs.encode_batch(list(zip(questions, texts)))
        flat = [(pair, window) for pair, enc in enumerate(encodings)
                for window in (enc, *enc.overflowing)]
        inputs = {name: np.array([getattr(w, field) for _, w in flat], dtype=np.int64)
                  for name, field in (("input_ids", "ids"), ("attention_mask", "attention_mask"),
                                      ("token_type_ids", "type_ids"))}
        return Windows(inputs=inputs, pairs=[pair for pair, _ in flat],
                       offsets=[w.offsets for _, w in flat],
                       context=np.array([[s == 1 for s in w.sequence_ids] for _, w in flat]))


def _load_tokenizer(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for an unreadable file
        raise ValueError(f"its {path.name} cannot be read ({exc})") from exc
