"""Masked-LM training data: example layouts over the tokenised corpus (``token_cache.py``) and the masking.

An **example** is a row ``(a_start, a_end, b_start, b_end, nsp_label)`` of token offsets:

* packed (default): fixed windows of ``max_length - 2`` tokens over the whole stream, crossing
  document boundaries (the [SEP] between documents stays), ``[CLS] window [SEP]``;
* unpacked: one document per sequence (long documents cut into windows), padded;
* NSP: segment A = leading sentences of a chunk, B = the rest (label 0) or sentences of another
  random document (label 1, half the time), ``[CLS] A [SEP] B [SEP]`` (the BERT recipe).

Masking is a pure function of ``(seed, epoch, example index, masking rate)``: the same example in
the same epoch is masked the same way whatever happened before, which makes resume exact and
gives fresh (dynamic) masks every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.token_cache import TokenCache

MIN_LENGTH = 8  # the shortest --max-length that leaves room for two segments and their three special tokens


def check_max_length(max_length: int) -> None:
    if max_length < MIN_LENGTH:
        raise BlurbkitError(f"--max-length {max_length} is too short (at least {MIN_LENGTH})")


def make_examples(cache: TokenCache, max_length: int, *, mode: str = "packed", seed: int = 0,
                  nsp_probability: float = 0.5) -> np.ndarray:
    """Rows (a_start, a_end, b_start, b_end, nsp_label); see the module docstring for the modes."""
    check_max_length(max_length)
    body = max_length - 2
    if mode == "packed":
        n = cache.n_tokens // body
        if n == 0:
            n, body = 1, cache.n_tokens
        starts = np.arange(n, dtype=np.int64) * body
        rows = np.full((n, 5), -1, dtype=np.int64)
        rows[:, 0], rows[:, 1] = starts, starts + body
        return rows
    sent = cache.sentences
    docs = cache.docs
    out: list[tuple[int, int, int, int, int]] = []
    if mode == "document":
        for d in range(len(docs) - 1):
            a, b = sent[docs[d], 0], sent[docs[d + 1] - 1, 1]
            for s in range(a, b, body):
                out.append((s, min(s + body, b), -1, -1, -1))
        return np.asarray(out, dtype=np.int64).reshape(-1, 5)
    if mode != "nsp":
        raise BlurbkitError(f"unknown example mode {mode!r}")
    rng = np.random.default_rng([seed, 7])
    target = max_length - 3
    n_docs = len(docs) - 1
    for d in range(n_docs):
        first, last = int(docs[d]), int(docs[d + 1])
        i = first
        while i < last:
            # Take sentences until the chunk reaches the target length.
            j = i
            length = 0
            while j < last and length < target:
                length += int(sent[j, 1] - sent[j, 0])
                j += 1
            n_sent = j - i
            split = i + (int(rng.integers(1, n_sent)) if n_sent >= 2 else 1)
            a_s, a_e = int(sent[i, 0]), int(sent[split - 1, 1])
            if n_sent == 1 or (n_docs > 1 and rng.random() < nsp_probability):
                other = int(rng.integers(0, n_docs - 1)) if n_docs > 1 else d
                if other >= d and n_docs > 1:
                    other += 1
                o_first, o_last = int(docs[other]), int(docs[other + 1])
                k = int(rng.integers(o_first, o_last))
                b_s = int(sent[k, 0])
                b_e = int(sent[o_last - 1, 1])
                label = 1 if other != d else 0
                # The unused sentences of this chunk go back into the pool (as in BERT's data script).
                j = split if n_sent >= 2 else j
            else:
                b_s, b_e = int(sent[split, 0]), int(sent[j - 1, 1])
                label = 0
            out.append((a_s, a_e, b_s, b_e, label))
            i = j
    return np.asarray(out, dtype=np.int64).reshape(-1, 5)


def nsp_pair_notes(examples: np.ndarray) -> list[str]:
    """A warning when far fewer than half of the segment pairs are true continuations: a one-sentence
    chunk always gets a random B, so a corpus of mostly one-sentence documents (titles) teaches NSP
    its prior and gives "MLM only" random pairs."""
    if len(examples) == 0:
        return []
    true_next = float(np.mean(examples[:, 4] == 0))
    if true_next >= 0.25:
        return []
    return [f"only {100 * true_next:.0f} % of the {len(examples)} segment pairs are true continuations (BERT: 50 %); "
            "most documents of this corpus are one sentence long (one sentence a line, blank lines between documents)"]


def check_nsp_corpus(cache: TokenCache) -> None:
    """Next-sentence prediction needs document boundaries: B is either the sentences after A in
    its document or a random other document's. With one document there are no random pairs; with
    one sentence per document (plain text without blank lines) no true next sentence."""
    n_docs = len(cache.docs) - 1
    if n_docs < 2:
        raise BlurbkitError("next-sentence prediction needs a corpus of several documents, this one is a single "
                            "document (separate documents by blank lines, or one JSON object per document)")
    if int(np.diff(cache.docs).max()) < 2:
        raise BlurbkitError(f"next-sentence prediction needs documents of two or more sentences, but all {n_docs} "
                            "documents of this corpus are one sentence long (plain text: one sentence a line, "
                            "blank lines between documents)")


# ---------------------------------------------------------------- masking


def check_whole_words(tokenizer: Any, whole_word: bool) -> None:
    """Whole-word masking finds a word's pieces by WordPiece's '##' prefix; a tokenizer without any
    (byte-pair encoding) would turn it into subword masking without a word. Checked before the
    corpus is tokenised."""
    if whole_word and not any(token.startswith("##") for token in tokenizer.get_vocab()):
        raise BlurbkitError("whole-word masking finds words by WordPiece's '##' continuation pieces, and this "
                            "tokenizer has none (byte-pair encoding?); use --masking subword")


@dataclass
class MaskingConfig:
    rate: float = 0.15
    whole_word: bool = True
    mask_fraction: float = 0.8
    random_fraction: float = 0.1


def mask_rate_at(step: int, total_steps: int, schedule: bool, rate: float) -> float:
    """Constant ``rate``, or the 5%→25% schedule: +5 points each fifth of training."""
    if not schedule:
        return rate
    fifth = min(4, (5 * step) // max(1, total_steps))
    return 0.05 * (fifth + 1)


class Collator:
    """Turns example rows into padded tensors plus the MLM targets (positions and ids)."""

    def __init__(self, tokenizer, cache: TokenCache, max_length: int, seed: int) -> None:
        self.tokens = cache.tokens
        self.max_length = max_length
        self.seed = seed
        self.cls = tokenizer.cls_token_id
        self.sep = tokenizer.sep_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.mask = tokenizer.mask_token_id
        if self.mask is None or self.cls is None:
            raise BlurbkitError("the tokenizer lacks [MASK] or [CLS]; MLM pretraining needs a BERT-style tokenizer")
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        self.continuation = np.zeros(size, dtype=bool)
        self.special = np.zeros(size, dtype=bool)
        for tok, idx in vocab.items():
            if tok.startswith("##"):
                self.continuation[idx] = True
        for idx in tokenizer.all_special_ids:
            self.special[idx] = True
        self.random_ids = np.flatnonzero(~self.special)

    def _ids(self, start: int, end: int) -> np.ndarray:
        return np.asarray(self.tokens[start:end], dtype=np.int64)

    def sequence(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a_s, a_e, b_s, b_e, _ = (int(x) for x in row)
        a = self._ids(a_s, a_e)
        if b_s < 0:
            a = a[: self.max_length - 2]
            ids = np.concatenate([[self.cls], a, [self.sep]])
            return ids, np.zeros(len(ids), dtype=np.int64)
        b = self._ids(b_s, b_e)
        budget = self.max_length - 3
        # Neither segment keeps more than the budget whatever the other's length, so cutting both to it
        # first ends where the token-by-token loop would (a random B may run to a long document's end).
        a, b = a[:budget], b[:budget]
        while len(a) + len(b) > budget:  # BERT: truncate the longer segment
            if len(a) > len(b):
                a = a[:-1]
            else:
                b = b[:-1]
        ids = np.concatenate([[self.cls], a, [self.sep], b, [self.sep]])
        types = np.concatenate([np.zeros(len(a) + 2, dtype=np.int64), np.ones(len(b) + 1, dtype=np.int64)])
        return ids, types

    def mask_sequence(self, ids: np.ndarray, rng: np.random.Generator, masking: MaskingConfig,
                      rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (masked ids, positions, original ids at those positions)."""
        candidates = np.flatnonzero(~self.special[ids])
        if len(candidates) == 0:
            return ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        n_pred = max(1, int(round(len(candidates) * rate)))
        if masking.whole_word:
            # A word = a non-continuation piece followed by its ## pieces.
            starts = ~self.continuation[ids[candidates]]
            starts[0] = True
            gaps = np.diff(candidates) != 1
            starts[1:] |= gaps
            words = np.split(candidates, np.flatnonzero(starts)[1:])
        else:
            words = [candidates[i : i + 1] for i in range(len(candidates))]
        order = rng.permutation(len(words))
        chosen: list[np.ndarray] = []
        count = 0
        for w in order:
            word = words[w]
            if count + len(word) > n_pred:
                if count >= n_pred:
                    break
                continue
            chosen.append(word)
            count += len(word)
        if not chosen:  # every word is longer than the budget: mask one anyway (no masked position is a NaN loss)
            chosen.append(words[order[0]])
        positions = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
        labels = ids[positions].copy()
        out = ids.copy()
        roll = rng.random(len(positions))
        replace = rng.choice(self.random_ids, size=len(positions))
        to_mask = roll < masking.mask_fraction
        to_random = (roll >= masking.mask_fraction) & (roll < masking.mask_fraction + masking.random_fraction)
        out[positions[to_mask]] = self.mask
        out[positions[to_random]] = replace[to_random]
        return out, positions, labels

    def __call__(self, rows: np.ndarray, indices: np.ndarray, epoch: int | np.ndarray, masking: MaskingConfig,
                 rate: float) -> dict[str, Any]:
        """`epoch`: the epoch of the batch, or of each example (an array beside `indices`)."""
        import torch

        seqs = []
        epochs = np.broadcast_to(np.asarray(epoch, dtype=np.int64), (len(indices),))
        for row, index, row_epoch in zip(rows, indices, epochs, strict=True):
            ids, types = self.sequence(row)
            rng = np.random.default_rng([self.seed, int(row_epoch), int(index)])
            masked, positions, labels = self.mask_sequence(ids, rng, masking, rate)
            seqs.append((masked, types, positions, labels, int(row[4])))
        length = max(len(s[0]) for s in seqs)
        batch = len(seqs)
        input_ids = np.full((batch, length), self.pad, dtype=np.int64)
        token_types = np.zeros((batch, length), dtype=np.int64)
        attention = np.zeros((batch, length), dtype=np.int64)
        flat_positions, flat_labels = [], []
        for i, (masked, types, positions, labels, _) in enumerate(seqs):
            input_ids[i, : len(masked)] = masked
            token_types[i, : len(types)] = types
            attention[i, : len(masked)] = 1
            flat_positions.append(positions + i * length)
            flat_labels.append(labels)
        result = {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_types),
            "attention_mask": torch.from_numpy(attention),
            "masked_index": torch.from_numpy(np.concatenate(flat_positions).astype(np.int64)),
            "mlm_labels": torch.from_numpy(np.concatenate(flat_labels).astype(np.int64)),
        }
        if seqs[0][4] >= 0:
            result["nsp_labels"] = torch.tensor([s[4] for s in seqs], dtype=torch.long)
        return result
