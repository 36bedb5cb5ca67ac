"""BERT WordPiece tokenisation as libs/wordpiece does it (Devlin et al. 2019: clean, split CJK,
whitespace and punctuation, lower-case and strip accents, greedy longest match with `##`
continuations, `[CLS] ... [SEP]`, truncation and `[PAD]`), and a vocabulary trainer.

The trainer learns the vocabulary libs/wordpiece learns from the same reports (BPE merges with
its tie-breaks), so both implementations train on the same vocab.txt.
"""
import collections
import heapq
import unicodedata

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_CHARS_PER_WORD = 100
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


class WordPieceError(ValueError):
    pass


def _is_punctuation(ch):
    cp = ord(ch)
    # ASCII symbols count as punctuation in BERT, whatever their Unicode category.
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or unicodedata.category(ch).startswith("P")


def _normalized_chars(text, lowercase):
    for ch in text:
        cp = ord(ch)
        category = unicodedata.category(ch)
        if cp in (0, 0xFFFD) or (category.startswith("C") and ch not in "\t\n\r"):
            continue
        if ch in " \t\n\r" or category == "Zs":
            yield " "
        elif any(lo <= cp <= hi for lo, hi in CJK_RANGES):
            yield f" {ch} "
        elif lowercase:
            yield "".join(c for c in unicodedata.normalize("NFD", ch.lower()) if unicodedata.category(c) != "Mn")
        else:
            yield ch


def words_of(text, lowercase=True):
    """Pre-tokenised words: whitespace-separated runs, each punctuation character a word of its own."""
    out = []
    for chunk in "".join(_normalized_chars(text, lowercase)).split():
        start = 0
        for i, ch in enumerate(chunk):
            if _is_punctuation(ch):
                if i > start:
                    out.append(chunk[start:i])
                out.append(ch)
                start = i + 1
        if start < len(chunk):
            out.append(chunk[start:])
    return out


class WordPiece:
    def __init__(self, vocab, max_length, lowercase=True):
        if max_length < 2:
            raise WordPieceError(f"max_length must be an integer >= 2 (room for [CLS] and [SEP]), got {max_length}")
        self.vocab = list(vocab)
        self.ids = {}
        for i, token in enumerate(self.vocab):
            if token in self.ids:
                raise WordPieceError(f"vocabulary line {i + 1} repeats a token of line {self.ids[token] + 1}")
            self.ids[token] = i
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in self.ids:
                raise WordPieceError(f"vocabulary has no {special} token")
        self.max_length, self.lowercase = max_length, lowercase

    @classmethod
    def from_vocab_txt(cls, text, max_length, lowercase=True):
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not lines:
            raise WordPieceError("vocabulary is empty")
        return cls([line.rstrip("\r") for line in lines], max_length, lowercase)

    def vocab_txt(self):
        return "\n".join(self.vocab) + "\n"

    def pieces(self, word):
        """Greedy longest-match-first; a word it cannot cover whole is [UNK]."""
        if len(word) > MAX_CHARS_PER_WORD:
            return ["[UNK]"]
        out, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(piece)
                    start = end
                    break
            else:
                return ["[UNK]"]
        return out

    def encode(self, text):
        """(ids, attention mask), each max_length long."""
        pieces = [p for w in words_of(text, self.lowercase) for p in self.pieces(w)][: self.max_length - 2]
        ids = [self.ids["[CLS]"], *(self.ids[p] for p in pieces), self.ids["[SEP]"]]
        padding = self.max_length - len(ids)
        return ids + [self.ids["[PAD]"]] * padding, [1] * len(ids) + [0] * padding

    @classmethod
    def train(cls, texts, vocab_size, max_length, lowercase=True):
        """Learns up to vocab_size tokens (special tokens included) as libs/wordpiece does, token for
        token: the alphabet (first characters, `##` continuations) in code-unit order, then BPE merges
        of the most frequent adjacent pair, ties to pairs whose left piece starts a word, then to
        code-unit order of (left, right)."""
        counts = collections.Counter(w for t in texts for w in words_of(t, lowercase))
        words = [[w[0]] + ["##" + c for c in w[1:]] for w in counts]
        weights = list(counts.values())
        alphabet = sorted({p for pieces in words for p in pieces}, key=_code_units)
        room = vocab_size - len(SPECIAL_TOKENS)
        if room < len(alphabet):
            raise WordPieceError(f"vocab_size {vocab_size} is too small: the corpus has {len(alphabet)} single-character tokens "
                                 f"plus {len(SPECIAL_TOKENS)} special tokens")
        return cls(SPECIAL_TOKENS + alphabet + _learn_merges(words, weights, room - len(alphabet)), max_length, lowercase)


def _code_units(text):
    """JavaScript's string order (UTF-16 code units), so both implementations sort alike."""
    return text.encode("utf-16-be")


def _learn_merges(words, weights, max_tokens):
    """BPE merges over the words' pieces (changed in place); the new pieces in the order learnt. A
    merge whose piece already exists is applied but adds no token, as in the `tokenizers` trainer."""
    pair_counts, holders, heap = collections.Counter(), collections.defaultdict(set), []

    def push(pair):
        # Most frequent first; then a left piece that starts a word; then code-unit order of "left\0right".
        heapq.heappush(heap, (-pair_counts[pair], pair[0].startswith("##"), _code_units(pair[0] + "\0" + pair[1]), pair))

    def count(index, sign, touched):
        pieces = words[index]
        for pair in zip(pieces, pieces[1:]):
            pair_counts[pair] += sign * weights[index]
            if sign > 0:
                holders[pair].add(index)
            touched.add(pair)

    initial = set()
    for index in range(len(words)):
        count(index, 1, initial)
    for pair in initial:
        push(pair)
    known = {p for pieces in words for p in pieces}
    learnt = []
    while len(learnt) < max_tokens and heap:
        negative, _, _, pair = heapq.heappop(heap)
        if -negative != pair_counts.get(pair) or negative >= 0:
            continue  # a stale entry: the pair's count changed since it was pushed
        left, right = pair
        merged = left + right[2:]
        touched = set()
        for index in holders.pop(pair, ()):
            count(index, -1, touched)
            old, new, i = words[index], [], 0
            while i < len(old):
                if i + 1 < len(old) and old[i] == left and old[i + 1] == right:
                    new.append(merged)
                    i += 2
                else:
                    new.append(old[i])
                    i += 1
            words[index] = new
            count(index, 1, touched)
        for p in touched:
            if pair_counts[p] > 0:
                push(p)
            else:
                del pair_counts[p]
        if merged not in known:
            known.add(merged)
            learnt.append(merged)
    return learnt
