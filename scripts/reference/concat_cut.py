#!/usr/bin/env python3
"""Reference prompts for the `Concat` composer's word-boundary cut (SPEC §3 step 6).

An independent re-implementation, for zipp-core/tests/personalize.rs: open_clip's
`SimpleTokenizer` BPE (ported without ftfy, so inputs must be plain ASCII) and the cut rule
written as a linear scan over word prefixes (zipp uses a binary search). Needs only the
`regex` package and the CLIP vocabulary zipp provisions:

    python3 scripts/reference/concat_cut.py ~/.cache/zipp/models/clip-bpe/bpe_simple_vocab_16e6.txt.gz
"""
import gzip
import html
import sys
from functools import lru_cache

import regex as re


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Clip:
    def __init__(self, path):
        merges = gzip.open(path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.pat = re.compile(
            r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE
        )

    @lru_cache(maxsize=None)
    def bpe(self, token):
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def count(self, text):
        assert text.isascii(), "no ftfy here: ASCII only"
        text = " ".join(html.unescape(html.unescape(text)).strip().split()).lower()
        n = 0
        for token in re.findall(self.pat, text):
            n += len(self.bpe("".join(self.byte_encoder[b] for b in token.encode("utf-8"))))
        return n


def concat(clip, base, pieces, budget):
    """Base, then whole pieces while they fit; the first misfit cut to its longest fitting
    word prefix (trailing ,;:.!?- trimmed) if that prefix alone counts >= 3 tokens; stop."""
    prompt = base.strip()
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if clip.count(f"{prompt}, {piece}") <= budget:
            prompt = f"{prompt}, {piece}"
            continue
        words = piece.split()
        best = None
        for j in range(1, len(words)):  # linear: every proper word prefix
            prefix = " ".join(words[:j]).rstrip(",;:.!?- ")
            if prefix and clip.count(f"{prompt}, {prefix}") <= budget:
                best = prefix
        if best is not None and clip.count(best) >= 3:
            prompt = f"{prompt}, {best}"
        break
    return prompt, clip.count(prompt)


CAPTION = (
    "Rain-slick alley in Omoide Yokocho, red paper lanterns reflected in puddles "
    "while a salaryman ducks under the smoky yakitori awnings"
)

if __name__ == "__main__":
    clip = Clip(sys.argv[1])
    print("caption tokens:", clip.count(CAPTION))
    for budget in (8, 9, 10, 20, 30, 75):
        print(budget, concat(clip, "a city street at night", [CAPTION, "neon signs"], budget))
    short = "neon signs glowing over wet asphalt"
    for budget in (8, 9):
        print(budget, concat(clip, "a city street at night", [short, "rain"], budget))
