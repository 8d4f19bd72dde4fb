"""What the embedded classifier sees in a text: word n-grams, character n-grams, structure.

Each kind of feature is a *block*: a key extractor (text → keys), a vocabulary fitted on the
training texts, and TF-IDF weights, l2-normalised within the block so that no block drowns
another by its sheer number of keys. The same :meth:`FittedBlock.vector` builds the training
rows and the rows of a live request, so training and serving cannot disagree on a feature.

Character n-grams are hashed to 64 bits with numpy instead of sliced into Python strings: a
4000-character prefix has about 16,000 of them, and slicing and counting that many strings costs
several milliseconds, the numpy hash a fraction of one. Word n-grams stay strings (a few hundred
per request at most) and are looked up in a dict.

Serving a request does not go through :meth:`FittedBlock.vector` but through a
:class:`ServingIndex`: every block's keys in one open-addressed :class:`KeyTable` (word keys by
Python's string hash), so a request costs a few numpy calls and about one cache line per key
whatever its block. With the caches cold, as in a Serve replica between requests, most of the
cost of a call is the number of distinct functions and cache lines it touches, not arithmetic.
The training path stays the reference: tests check that both give the same columns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from autoray.errors import DatasetError

BlockKind = Literal["word", "char"]

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern: runs of two or more word characters."""

_FENCED = re.compile(r"```.*?(```|$)", re.S)
_CODE_LINE = re.compile(r"^(\s{4,}|\t|\s*at |\s*File \"|\s*\d+:|\s*[{}\[\]<]|\s*\$ )")
"""Lines of pasted material: indented code, stack frames, numbered source, brackets, shell."""

_MULTIPLIER = np.uint64(1099511628211)
_SEED = np.uint64(14695981039346656037)
_SEED_STEP = np.uint64(int(_SEED) * int(_MULTIPLIER) % 2**64)
"""``seed·P``: every hash starts with it, so the first step is one addition."""

_TEST_COUNTS = re.compile(r"\d (?:passed|failed)\b")


def _has_any(*needles: str) -> Callable[[str], bool]:
    return lambda text: any(needle in text for needle in needles)


@dataclass(frozen=True, slots=True)
class _Search:
    """A regex search, skipped when none of ``needs`` (substrings every match contains) occurs:
    a substring test is a fraction of a regex scan, and most requests carry none of them."""

    pattern: re.Pattern[str]
    needs: tuple[str, ...] = ()

    def __call__(self, text: str) -> bool:
        if self.needs and not any(needle in text for needle in self.needs):
            return False
        return self.pattern.search(text) is not None


def _matches(pattern: str, flags: int = 0, needs: tuple[str, ...] = ()) -> _Search:
    return _Search(re.compile(pattern, flags), needs)


def _test_output(text: str) -> bool:
    literal = ("FAILED", "PASSED", "FAIL:", "AssertionError", "--- FAIL")
    if any(needle in text for needle in literal):
        return True
    return ("passed" in text or "failed" in text) and _TEST_COUNTS.search(text) is not None


# Each sign is a substring test or a regex that starts at a literal or a line start: a pattern
# that may start anywhere (``[\w/-]+\.py``) cost 20 µs a request, a tenth of the whole budget.
_STRUCTURE: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("code_fence", _has_any("```")),
    (
        "stack_trace",
        _matches(
            r"Traceback \(most recent|\n\s+at \S+\(|panic: |File \"[^\"]+\", line \d",
            needs=("Traceback (most recent", "at ", "panic: ", 'File "'),
        ),
    ),
    ("test_output", _test_output),
    ("shell_prompt", _matches(r"^[ \t]*(?:\$|>>>|PS [^>\n]*>) \S", re.M, ("$ ", "> "))),
    ("diff", _matches(r"^(?:\+\+\+ |--- a/|@@ )", re.M, ("+++ ", "--- a/", "@@ "))),
    ("url", _has_any("http://", "https://")),
    ("file_path", _matches(r"\.(?:py|ts|tsx|js|go|rs|java|kt|rb|ya?ml|json|toml|sql|tf|sh)\b")),
    ("numbered_list", _matches(r"^[ \t]*\d+[.)] ", re.M, (". ", ") "))),
    (
        "opens_with_question_word",
        _matches(
            r"^\s*(how|what|why|where|which|who|when|is|are|does|do|can|could|should)\b", re.I
        ),
    ),
)
_LENGTH_BUCKETS = (60, 120, 400, 1000)
"""Upper bounds (characters) of the length buckets; longer texts fall in a last bucket."""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What a model reads.

    ``word_ngrams`` is the longest word n-gram (0: no word block); ``char_ngrams`` the
    (shortest, longest) character n-gram, or None for no character block. ``structural`` adds
    the signs of :func:`struct_keys` to the word block as pseudo-words (``<code_fence>``), so
    they weigh like words: in a block of their own, l2-normalised over a handful of keys, they
    outweighed thousands of n-grams and cost 15-26 points of CV accuracy on v1.
    ``prose_words`` takes word n-grams from the prose only (:func:`prose`), not from pasted
    code, logs or output, whose identifiers say what the code is about rather than what the
    user asks.
    """

    word_ngrams: int = 1
    char_ngrams: tuple[int, int] | None = (2, 5)
    structural: bool = False
    sublinear_tf: bool = False
    prose_words: bool = False

    def label(self) -> str:
        parts = [f"word1-{self.word_ngrams}"] if self.word_ngrams else []
        if self.char_ngrams:
            parts.append(f"char{self.char_ngrams[0]}-{self.char_ngrams[1]}")
        if self.structural:
            parts.append("struct")
        prose_only = " prose-words" if self.prose_words else ""
        return "+".join(parts) + prose_only + (" sublinear" if self.sublinear_tf else "")

    def blocks(self) -> tuple[BlockKind, ...]:
        kinds: list[BlockKind] = ["word"] if self.word_ngrams or self.structural else []
        if self.char_ngrams:
            kinds.append("char")
        return tuple(kinds)


def word_keys(text: str, longest: int) -> list[str]:
    """Lower-cased word n-grams of length 1..``longest``, joined by single spaces."""
    if longest < 1:
        return []
    words = _TOKEN.findall(text.lower())
    keys = list(words)
    for n in range(2, longest + 1):
        keys += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return keys


def prose(text: str) -> str:
    """The text without fenced code blocks and without lines that look pasted, not written."""
    unfenced = _FENCED.sub("\n", text) if "```" in text else text
    return "\n".join([line for line in unfenced.split("\n") if not _CODE_LINE.match(line)])


def char_keys(text: str, shortest: int, longest: int) -> NDArray[np.uint64]:
    """64-bit hashes of the character n-grams of the lower-cased, space-normalised text.

    The text is padded with a space at each end so that word starts and ends are n-grams of
    their own. An n-gram's hash is the polynomial ``seed·Pⁿ + Σ cᵢ·Pⁿ⁻¹⁻ⁱ`` modulo 2⁶⁴ of its
    code points (FNV's offset and prime), built for all n-grams at once by a rolling update;
    the seed term tells lengths apart. Hashes are only compared for equality, so they need no
    mixing. Lone surrogates (possible in JSON input) are kept, never an error.
    """
    parts = char_key_parts(text, shortest, longest)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def char_key_parts(text: str, shortest: int, longest: int) -> list[NDArray[np.uint64]]:
    """The hashes of :func:`char_keys`, one array per n-gram length, for one concatenation."""
    padded = " " + " ".join(text.lower().split()) + " "
    codes = np.frombuffer(padded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    codes64 = codes.astype(np.uint64)
    rolling = codes64 + _SEED_STEP
    found = [rolling] if shortest <= 1 else []
    for n in range(2, min(longest, len(codes64)) + 1):
        rolling = rolling[:-1] * _MULTIPLIER + codes64[n - 1 :]
        if n >= shortest:
            found.append(rolling)
    return found


def struct_keys(text: str) -> list[str]:
    """Named signs of what a request carries: a code block, a stack trace, test output, ..."""
    keys = [f"<{name}>" for name, present in _STRUCTURE if present(text)]
    if text.rstrip().endswith("?"):
        keys.append("<ends_with_question>")
    bucket = next((i for i, bound in enumerate(_LENGTH_BUCKETS) if len(text) < bound), None)
    keys.append(f"<length_{bucket if bucket is not None else len(_LENGTH_BUCKETS)}>")
    return keys


@dataclass(frozen=True, slots=True)
class FittedBlock:
    """One block's vocabulary and inverse document frequencies, fitted on training texts.

    String keys live in ``index`` (key → column); hashed keys in ``hashes`` (sorted, column =
    position). ``idf`` is scikit-learn's smoothed idf, ``ln((1 + n) / (1 + df)) + 1``.
    """

    kind: BlockKind
    spec: FeatureSpec
    index: dict[str, int]
    hashes: NDArray[np.uint64]
    idf: NDArray[np.float64]

    @property
    def size(self) -> int:
        return len(self.idf)

    def vector(self, text: str) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Columns and l2-normalised TF-IDF values of ``text`` in this block."""
        columns, counts = self._counts(text)
        tf = counts.astype(np.float64)
        if self.spec.sublinear_tf:
            tf = np.log(tf) + 1.0
        values = tf * self.idf[columns]
        norm = float(np.sqrt(values @ values))
        return columns, (values / norm if norm else values)

    def _counts(self, text: str) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
        if self.kind == "char":
            low, high = self.spec.char_ngrams or (0, 0)
            return _hash_counts(self.hashes, char_keys(text, low, high))
        keys = _string_keys(self.spec)(text)
        found = Counter(column for key in keys if (column := self.index.get(key)) is not None)
        columns = np.fromiter(found.keys(), dtype=np.intp, count=len(found))
        counts = np.fromiter(found.values(), dtype=np.int64, count=len(found))
        return columns, counts


def _hash_counts(
    vocabulary: NDArray[np.uint64], hashes: NDArray[np.uint64]
) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
    if not len(vocabulary) or not len(hashes):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    distinct, counts = np.unique(hashes, return_counts=True)  # sorted: a cache-friendly search
    positions = np.searchsorted(vocabulary, distinct)
    positions[positions >= len(vocabulary)] = 0
    known = vocabulary[positions] == distinct
    return positions[known].astype(np.intp), counts[known].astype(np.int64)


def _string_keys(spec: FeatureSpec) -> Callable[[str], list[str]]:
    def words(text: str) -> list[str]:
        return word_keys(prose(text) if spec.prose_words else text, spec.word_ngrams)

    if spec.structural:
        return lambda text: words(text) + struct_keys(text)
    return words


def fit_block(kind: BlockKind, spec: FeatureSpec, texts: Sequence[str]) -> FittedBlock:
    """The vocabulary (every key seen in ``texts``) and its idf; order is sorted, so stable."""
    if kind == "char":
        low, high = spec.char_ngrams or (0, 0)
        per_text = [np.unique(char_keys(text, low, high)) for text in texts]
        hashes, df = np.unique(np.concatenate(per_text), return_counts=True)
        return FittedBlock(kind, spec, {}, hashes, _idf(len(texts), df))
    extract = _string_keys(spec)
    frequency = Counter(key for text in texts for key in set(extract(text)))
    keys = sorted(frequency)
    df = np.array([frequency[key] for key in keys], dtype=np.int64)
    index = {key: column for column, key in enumerate(keys)}
    return FittedBlock(kind, spec, index, np.zeros(0, dtype=np.uint64), _idf(len(texts), df))


def _idf(documents: int, df: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.log((1.0 + documents) / (1.0 + df.astype(np.float64))) + 1.0


def fit_blocks(spec: FeatureSpec, texts: Sequence[str]) -> tuple[FittedBlock, ...]:
    return tuple(fit_block(kind, spec, texts) for kind in spec.blocks())


def featurize(
    blocks: Sequence[FittedBlock], text: str
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Columns and values of ``text`` over all blocks laid side by side."""
    columns: list[NDArray[np.intp]] = []
    values: list[NDArray[np.float64]] = []
    offset = 0
    for block in blocks:
        block_columns, block_values = block.vector(text)
        columns.append(block_columns + offset)
        values.append(block_values)
        offset += block.size
    return np.concatenate(columns), np.concatenate(values)


def width(blocks: Sequence[FittedBlock]) -> int:
    return sum(block.size for block in blocks)


SLOTS_PER_KEY = 4
"""Slots per key of a :class:`KeyTable`: at a load of a quarter, a key sits at most a few slots
after its home slot, so the window each query reads stays within a cache line or two."""
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
"""2⁶⁴ divided by the golden ratio: multiplying by it and keeping the top bits spreads keys
evenly over buckets (Knuth's multiplicative hashing)."""


@dataclass(frozen=True, slots=True)
class KeyTable:
    """A read-only hash table from 64-bit keys to columns, searched for many keys at once.

    Open addressing with linear probing: a key's home slot is the top bits of
    ``key x`` :data:`_FIBONACCI`, and it sits at most ``width - 1`` slots after it (keys are
    placed in the order of their home slots, which keeps the longest run short at this load).
    One gather of ``n x width`` slots and one comparison find ``n`` keys without a loop,
    touching about one cache line each. Empty slots hold a value that is no key and the column
    :attr:`empty` (``len(keys)``), which the caller keeps as a row of zeros.

    This replaced a binary search of the sorted vocabulary: with cold CPU caches (a Serve
    replica between two requests) each of its 17 steps was a cache miss.
    """

    keys: NDArray[np.uint64]
    columns: NDArray[np.int32]
    window: NDArray[np.intp]
    shift: np.uint64
    empty: int

    @classmethod
    def of(cls, keys: NDArray[np.uint64]) -> KeyTable:
        """The table of distinct ``keys``; key ``i`` maps to column ``i``."""
        bits = max(1, int(SLOTS_PER_KEY * len(keys) - 1).bit_length())
        shift = np.uint64(64 - bits)
        homes = ((keys * _FIBONACCI) >> shift).astype(np.intp)
        order = np.argsort(homes, kind="stable")
        steps = np.arange(len(keys))
        places = np.maximum.accumulate(homes[order] - steps) + steps if len(keys) else steps
        width = int((places - homes[order]).max(initial=0)) + 1
        table = huge_page_array((2**bits + width,), np.uint64, _not_in(keys))
        columns = huge_page_array(table.shape, np.int32, len(keys))
        table[places], columns[places] = keys[order], order
        return cls(table, columns, np.arange(width, dtype=np.intp), shift, len(keys))

    def find(self, hashes: NDArray[np.uint64]) -> NDArray[np.int32]:
        """The column of each of (distinct) ``hashes``, or :attr:`empty` where it is no key."""
        slots = ((hashes * _FIBONACCI) >> self.shift).view(np.intp)[:, None] + self.window
        queries, offsets = np.nonzero(self.keys[slots] == hashes[:, None])
        columns = np.full(len(hashes), self.empty, dtype=np.int32)
        columns[queries] = self.columns[slots[queries, offsets]]
        return columns


def _not_in(keys: NDArray[np.uint64]) -> int:
    """The smallest value that is not a key: what empty slots hold, so only a non-key meets one."""
    taken = np.sort(keys[keys < len(keys) + 1])
    gaps = np.flatnonzero(taken != np.arange(len(taken), dtype=np.uint64))
    return int(gaps[0]) if len(gaps) else len(taken)


_HUGE_PAGE = 2**21


def huge_page_array(shape: tuple[int, ...], dtype: type[Any], fill: float) -> NDArray[Any]:
    """A new array filled with ``fill``, starting on a 2 MiB boundary, for tables read at random.

    numpy asks the kernel for transparent huge pages on large allocations, but only pages
    wholly inside an allocation get them, and ``np.zeros`` memory is never asked at all. With
    4 KiB pages every key or row a request reads at random is also a TLB miss, which in a
    virtual machine costs a page-table walk of its own (cold classify time fell by about a
    tenth); from a 2 MiB-aligned start a table is a handful of huge pages. Small arrays, and
    kernels that give no huge pages, get a plain array.
    """
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size < 2 * _HUGE_PAGE:
        return np.full(shape, fill, dtype=dtype)
    buffer = np.empty(size + _HUGE_PAGE, dtype=np.uint8)
    start = -buffer.ctypes.data % _HUGE_PAGE
    array = buffer[start : start + size].view(dtype).reshape(shape)
    array.fill(fill)
    return array


def string_hashes(keys: Sequence[str]) -> NDArray[np.uint64]:
    """Python's own 64-bit hash of each key: equal strings, equal hashes, within one process."""
    return np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys)).view(np.uint64)


@dataclass(frozen=True, slots=True)
class ServingIndex:
    """Fitted blocks re-laid for serving one request at a time; the same features, found faster.

    All blocks' keys (word keys by :func:`string_hashes`, character n-grams by
    :func:`char_keys`) live in one :class:`KeyTable` whose columns are those of
    :func:`featurize` (blocks side by side), so the caller's weights need no reordering.
    :meth:`count` gives a text's columns and how often each occurs.
    """

    blocks: tuple[FittedBlock, ...]
    table: KeyTable

    @classmethod
    def of(cls, blocks: Sequence[FittedBlock]) -> ServingIndex:
        keys = np.concatenate(
            [b.hashes if b.kind == "char" else string_hashes(list(b.index)) for b in blocks]
        )
        if len(np.unique(keys)) < len(keys):
            raise DatasetError(
                "two feature keys share a 64-bit hash; Python's string hash is seeded per "
                "process, so train again in a new process (or set PYTHONHASHSEED to another value)"
            )
        return cls(tuple(blocks), KeyTable.of(keys))

    def count(self, text: str) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
        """The columns of ``text``'s distinct keys and how often each occurs. A key the model
        does not know gets the table's empty column (a row of zeros to the caller)."""
        parts: list[NDArray[np.uint64]] = []
        for block in self.blocks:
            if block.kind == "char":
                parts += char_key_parts(text, *(block.spec.char_ngrams or (0, 0)))
            else:
                parts.append(string_hashes(_string_keys(block.spec)(text)))
        hashes = np.concatenate(parts)
        hashes.sort()
        starts = np.ones(len(hashes) + 1, dtype=np.bool_)
        np.not_equal(hashes[1:], hashes[:-1], out=starts[1:-1])
        first = np.flatnonzero(starts)
        return self.table.find(hashes[first[:-1]]), first[1:] - first[:-1]
