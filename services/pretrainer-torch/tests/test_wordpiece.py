"""Tokenisation and vocabulary training are libs/wordpiece's, token for token."""
import json

import pytest

from conftest import run_reference
from medsyn_pretrainer_torch.wordpiece import SPECIAL_TOKENS, WordPiece, WordPieceError

CORPUS = [
    "FINDINGS: Right-sided pleural effusion; no pneumothorax.",
    "IMPRESSION: Résumé of prior café-au-lait findings, T12 compression (stable) since 2019.",
    "Swan-Ganz catheter tip in the right pulmonary artery. Kerley B lines.",
    "Dobbhoff tube terminates in the stomach. 肺 opacity noted.",
]
TEXTS = CORPUS + ["Unseen wordsxyz and ÀÉÎ accents!!", "a " * 40, "", "pneumothoraxpneumothoraxpneumothorax" * 4]


def test_encoding_is_libs_wordpieces_on_the_same_vocabulary(tmp_path):
    tokenizer = WordPiece.train(CORPUS, vocab_size=150, max_length=24)
    (tmp_path / "vocab.txt").write_text(tokenizer.vocab_txt())
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    reference = run_reference("tokenize", tmp_path / "vocab.txt", 24, tmp_path / "texts.json")
    ours = [tokenizer.encode(t) for t in TEXTS]
    assert [ids for ids, _ in ours] == reference["ids"]
    assert [mask for _, mask in ours] == reference["masks"]


@pytest.mark.parametrize("size", [80, 150, 400])
def test_a_trained_vocabulary_is_libs_wordpieces_token_for_token(tmp_path, size):
    corpus = CORPUS * 3 + [f"case {i}: small {'left' if i % 2 else 'right'} effusion, stable since {2000 + i}" for i in range(30)]
    (tmp_path / "corpus.json").write_text(json.dumps(corpus))
    ours = WordPiece.train(corpus, vocab_size=size, max_length=16)
    assert ours.vocab_txt() == run_reference("train-vocab", tmp_path / "corpus.json", size)
    assert ours.vocab[:5] == SPECIAL_TOKENS and len(ours.vocab) <= size


def test_a_vocabulary_too_small_for_the_alphabet_is_refused():
    with pytest.raises(WordPieceError, match="vocab_size 20 is too small"):
        WordPiece.train(CORPUS, vocab_size=20, max_length=16)
