"""Reference BERT tokenisation, written from the published algorithm (Devlin et al. 2019,
google-research/bert tokenization.py: BasicTokenizer + WordpieceTokenizer), independent of the
Hugging Face tokenizers that @medsyn/wordpiece uses.

  bert_wordpiece.py notes METADATA_CSV COUNT         -> JSON list of the first COUNT non-empty clinical notes
  bert_wordpiece.py encode REQUEST_JSON              -> JSON {"ids": [[...]], "masks": [[...]]}
     request: {"vocab": path, "texts": [...], "max_length": n, "lowercase": bool}
"""
import csv
import json
import sys
import unicodedata


def whitespace_tokenize(text):
    text = text.strip()
    return text.split() if text else []


def is_whitespace(ch):
    return ch in (" ", "\t", "\n", "\r") or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text, lowercase):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        cleaned.append(" " if is_whitespace(ch) else ch)
    spaced = []
    for ch in cleaned:
        spaced.append(f" {ch} " if is_cjk(ord(ch)) else ch)
    out = []
    for token in whitespace_tokenize("".join(spaced)):
        if lowercase:
            token = "".join(c for c in unicodedata.normalize("NFD", token.lower()) if unicodedata.category(c) != "Mn")
        word = []
        for ch in token:
            if is_punctuation(ch):
                if word:
                    out.append("".join(word))
                    word = []
                out.append(ch)
            else:
                word.append(ch)
        if word:
            out.append("".join(word))
    return out


def wordpiece(token, vocab, max_chars=100):
    chars = list(token)
    if len(chars) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(chars):
        end, piece = len(chars), None
        while start < end:
            candidate = "".join(chars[start:end])
            if start > 0:
                candidate = "##" + candidate
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def encode(text, vocab, max_length, lowercase):
    tokens = [p for word in basic_tokenize(text, lowercase) for p in wordpiece(word, vocab)]
    tokens = ["[CLS]"] + tokens[: max_length - 2] + ["[SEP]"]
    ids = [vocab[t] for t in tokens]
    mask = [1] * len(ids)
    pad = max_length - len(ids)
    return ids + [vocab["[PAD]"]] * pad, mask + [0] * pad


def main():
    if sys.argv[1] == "notes":
        with open(sys.argv[2], newline="", encoding="utf-8") as f:
            notes = [row["clinical_notes"] for row in csv.DictReader(f) if row["clinical_notes"].strip()]
        json.dump(notes[: int(sys.argv[3])], sys.stdout)
        return
    request = json.load(open(sys.argv[2], encoding="utf-8"))
    with open(request["vocab"], encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    ids, masks = [], []
    for text in request["texts"]:
        i, m = encode(text, vocab, request["max_length"], request["lowercase"])
        ids.append(i)
        masks.append(m)
    json.dump({"ids": ids, "masks": masks}, sys.stdout)


main()
