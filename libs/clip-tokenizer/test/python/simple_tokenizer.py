"""OpenAI CLIP's published simple_tokenizer algorithm (github.com/openai/CLIP,
clip/simple_tokenizer.py), rewritten without the `regex` and `ftfy` packages, which Debian's
Python lacks: the pre-tokenisation regex is spelled out as a scanner over Unicode categories.

stdin: {"merges": path to merges.txt, "texts": [...]}; stdout: [[ids of text 0 without start/end], ...]
The vocabulary is rebuilt from the merges exactly as SimpleTokenizer.__init__ does.
"""
import json
import sys
import unicodedata


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


def is_letter(c):
    return unicodedata.category(c).startswith("L")


def is_number(c):
    return unicodedata.category(c).startswith("N")


SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def pre_tokenize(text):
    """re.findall(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", text)"""
    out, i = [], 0
    while i < len(text):
        match = next((s for s in SPECIALS + CONTRACTIONS if text.startswith(s, i)), None)
        if match is not None:
            out.append(match)
            i += len(match)
        elif is_letter(text[i]):
            j = i
            while j < len(text) and is_letter(text[j]):
                j += 1
            out.append(text[i:j])
            i = j
        elif is_number(text[i]):
            out.append(text[i])
            i += 1
        elif not text[i].isspace():
            j = i
            while j < len(text) and not (text[j].isspace() or is_letter(text[j]) or is_number(text[j])):
                j += 1
            out.append(text[i:j])
            i = j
        else:
            i += 1
    return out


class SimpleTokenizer:
    def __init__(self, merges):
        self.byte_encoder = bytes_to_unicode()
        merges = [tuple(m.split()) for m in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        for merge in merges:
            vocab.append("".join(merge))
        vocab.extend(SPECIALS)
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))

    def bpe(self, token):
        if token in SPECIALS:
            return token
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        return " ".join(word)

    def encode(self, text):
        # basic_clean without ftfy, then whitespace_clean and lower(), as in simple_tokenizer.
        text = " ".join(text.split()).strip().lower()
        ids = []
        for token in pre_tokenize(text):
            if token not in SPECIALS:
                token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids


def main():
    request = json.load(sys.stdin)
    with open(request["merges"], encoding="utf-8") as f:
        merges = [line for line in f.read().split("\n") if line and not line.startswith("#version")]
    tokenizer = SimpleTokenizer(merges)
    json.dump([tokenizer.encode(t) for t in request["texts"]], sys.stdout)


if __name__ == "__main__":
    main()
