"""Tokenisation is libs/wordpiece's on the same vocabulary, and the trainer's vocabulary has its layout."""
import json

from conftest import run_reference
from medsyn_pretrainer_torch.wordpiece import SPECIAL_TOKENS, WordPiece

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


def test_a_trained_vocabulary_starts_with_the_special_tokens_then_characters():
    vocab = WordPiece.train(CORPUS, vocab_size=200, max_length=16).vocab
    assert vocab[:5] == SPECIAL_TOKENS
    singles = [t for t in vocab[5:] if len(t.removeprefix("##")) == 1]
    assert vocab[5:5 + len(singles)] == singles  # characters, then continuations, then longer pieces
    assert len(vocab) <= 200 and len(set(vocab)) == len(vocab)
    # Frequent words become whole pieces.
    assert "pleural" in vocab or "right" in vocab
