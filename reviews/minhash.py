"""MinHash signatures of justifications, and how alike two of them are (issue 18).

Pure: a justification becomes a signature of NUM_HASHES integers, and the share of equal
positions between two signatures estimates the Jaccard similarity of their word-shingle sets.
A signature is stored packed (Judgement.minhash: NUM_HASHES unsigned 64-bit big-endian
values, SIGNATURE_BYTES in all; empty for a text without words), so a submit compares a new
justification with a contractor's last 500 as one array: decoding them as JSON lists of
integers and comparing them in Python cost ~2 ms of a 15 ms submit (bench.submit_load).
"""

from __future__ import annotations

import hashlib
import re
import struct

import numpy as np

# 64 hashes give an estimate within about +-0.06 of the true Jaccard similarity (one standard
# error at J = 0.6): precise enough for a review hint, and 64 integers a judgement to store.
NUM_HASHES = 64
SIGNATURE_BYTES = 8 * NUM_HASHES
# Two-word shingles: justifications are short, and with three-word shingles changing three
# words of a thirty-word text already drops the similarity to about 0.5, below any threshold
# that still keeps unrelated justifications about the same code apart.
SHINGLE_WORDS = 2

_MERSENNE = (1 << 61) - 1
_WORD = re.compile(r"[^\W_]+")
_PACKED = struct.Struct(f">{NUM_HASHES}Q")
_VALUE = np.dtype(">u8")


def _coefficients() -> list[tuple[int, int]]:
    # Derived from fixed salts, not from `random`, so that signatures stored today still
    # compare with those computed by another process or Python version.
    pairs = []
    for i in range(NUM_HASHES):
        digest = hashlib.blake2b(f"marlin-minhash-{i}".encode(), digest_size=16).digest()
        a = int.from_bytes(digest[:8], "big") % (_MERSENNE - 1) + 1
        b = int.from_bytes(digest[8:], "big") % _MERSENNE
        pairs.append((a, b))
    return pairs


_COEFFICIENTS = _coefficients()


def words(text: str) -> list[str]:
    """The text's words, lower-cased, with punctuation and spacing gone."""
    return _WORD.findall(text.casefold())


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[str]:
    """The set of k-word runs of the text (the whole text when it is shorter than k words)."""
    tokens = words(text)
    if len(tokens) <= k:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


def minhash(text: str) -> bytes:
    """The text's signature: for each of NUM_HASHES universal hashes (a*x+b mod p over a 64-bit
    blake2b of the shingle), the smallest value over its shingles, packed. b"" for no words."""
    hashed = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")
        for s in shingles(text)
    ]
    if not hashed:
        return b""
    return _PACKED.pack(*(min((a * x + b) % _MERSENNE for x in hashed) for a, b in _COEFFICIENTS))


def agreements(signature: bytes, others: bytes) -> np.ndarray:
    """For `others`, signatures packed one after another, the share of positions each agrees
    with `signature` on: the Jaccard estimate of each, in their order. Zeros when
    `signature` is empty or of another NUM_HASHES (such signatures are not comparable)."""
    if len(others) % SIGNATURE_BYTES:
        raise ValueError("signatures must be packed whole, SIGNATURE_BYTES each")
    matrix = np.frombuffer(others, dtype=_VALUE).reshape(-1, NUM_HASHES)
    if len(signature) != SIGNATURE_BYTES:
        return np.zeros(len(matrix))
    equal = matrix == np.frombuffer(signature, dtype=_VALUE)
    return np.count_nonzero(equal, axis=1) / NUM_HASHES


def jaccard_estimate(first: bytes, second: bytes) -> float:
    """Share of positions where two signatures agree; 0 when either is empty or they differ
    in length (signatures from another NUM_HASHES are not comparable)."""
    if len(first) != len(second) or len(second) != SIGNATURE_BYTES:
        return 0.0
    return float(agreements(first, second)[0])


def jaccard(first: str, second: str) -> float:
    """The exact Jaccard similarity of two texts' shingle sets (what minhash estimates)."""
    a, b = shingles(first), shingles(second)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)
