"""WordPiece vocabularies: train one on a corpus (Hugging Face `tokenizers`), compare two.

The trained tokenizer is a BERT uncased WordPiece tokenizer (BERT normaliser: clean text, CJK
spacing, lower case, strip accents; BERT pre-tokeniser: split on whitespace and punctuation;
``##`` continuation prefix; [PAD] [UNK] [CLS] [SEP] [MASK]) saved as ``tokenizer.json`` +
``vocab.txt`` + ``tokenizer_config.json`` so that ``AutoTokenizer.from_pretrained(DIR)`` loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, check_replaceable, clean_stale, read_lines

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def table1_terms() -> list[str]:
    text = resources.files("blurbkit.pretrain").joinpath("table1_terms.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_terms(path: str | Path) -> list[str]:
    terms = [line.strip() for line in read_lines(path) if line.strip() and not line.lstrip().startswith("#")]
    if not terms:
        raise BlurbkitError("no terms in the file (one term a line, # for comments)", path=path)
    return terms


def _batches(sentences: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for sentence in sentences:
        batch.append(sentence)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


MAX_SIZE = 1_000_000  # pieces: far above any BERT-style vocabulary, far below what exhausts memory


def build_vocab(
    sentences: Iterable[str],
    out: str | Path,
    *,
    size: int = 30000,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    lowercase: bool = True,
    max_length: int = 512,
    source: str | None = None,
) -> dict[str, Any]:
    """Train a WordPiece vocabulary on a stream of sentences and save it as a transformers tokenizer.
    `source`: where the sentences come from, named by the error when there are none."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizerFast

    if size < len(SPECIAL_TOKENS) + 10:
        raise BlurbkitError(f"--size {size} is too small for a vocabulary")
    if size > MAX_SIZE:  # the trainer reserves memory by the size asked for: 3e9 aborted the process
        raise BlurbkitError(f"--size {size} is more than {MAX_SIZE:,} pieces (BERT-style vocabularies are 30-50 k, "
                            "multilingual ones 250 k)")
    # Only nothing, an empty folder or an earlier vocabulary is replaced: a model folder given by mistake is kept.
    check_replaceable(out, "vocab_build.json", "a vocabulary built by blurbkit")
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=None, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = WordPieceTrainer(vocab_size=size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                               limit_alphabet=limit_alphabet, continuing_subword_prefix="##", show_progress=False)
    counted = {"sentences": 0}

    def stream() -> Iterator[list[str]]:
        for batch in _batches(sentences):
            counted["sentences"] += len(batch)
            yield batch

    tokenizer.train_from_iterator(stream(), trainer=trainer)
    if counted["sentences"] == 0:
        raise BlurbkitError("the corpus has no text to build a vocabulary from", path=source)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=lowercase, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", model_max_length=max_length)
    out = Path(out)
    clean_stale(out)  # what a killed earlier write left beside it (and an interrupted replace's old version)
    with atomic_dir(out) as tmp:
        fast.save_pretrained(str(tmp))
        if not (tmp / "vocab.txt").is_file():  # older/newer transformers may only write tokenizer.json
            vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
            (tmp / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab), "utf-8")
        info = {"vocab_size": tokenizer.get_vocab_size(), "sentences": counted["sentences"], "min_frequency": min_frequency,
                "lowercase": lowercase, "special_tokens": SPECIAL_TOKENS}
        (tmp / "vocab_build.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    return info


def load_any_tokenizer(name: str | Path):
    """A tokenizer from a tokenizer or model directory; ``default`` = the default model's vocabulary."""
    from blurbkit.models.loading import default_model_dir, load_tokenizer

    path = default_model_dir() if str(name) == "default" else Path(name)
    if not path.is_dir():
        raise BlurbkitError("tokenizer directory not found", path=path)
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise BlurbkitError("no tokenizer.json or vocab.txt: not a tokenizer directory", path=path)
    return load_tokenizer(path)


def pieces(tokenizer, term: str) -> list[str]:
    return tokenizer.tokenize(term)


def pieces_per_word(tokenizer, sentences: Iterable[str]) -> dict[str, float]:
    """Average WordPiece pieces per pre-tokenised word (BERT pre-tokeniser: whitespace + punctuation)."""
    from blurbkit.pretrain.token_cache import plain_backend

    backend = plain_backend(tokenizer)
    words = tokens = unknown = 0
    unk_id = tokenizer.unk_token_id
    for batch in _batches(sentences, 512):
        for enc in backend.encode_batch(batch, add_special_tokens=False):
            ids = enc.word_ids
            words += len({w for w in ids if w is not None})
            tokens += len(enc.ids)
            unknown += sum(1 for i in enc.ids if i == unk_id)
    return {"words": words, "pieces": tokens, "pieces_per_word": tokens / words if words else 0.0,
            "unknown_rate": unknown / tokens if tokens else 0.0}


def compare(tokenizer_a, tokenizer_b, terms: list[str], sentences: list[str] | None = None) -> dict[str, Any]:
    rows = [{"term": t, "a": pieces(tokenizer_a, t), "b": pieces(tokenizer_b, t)} for t in terms]
    result: dict[str, Any] = {"terms": rows,
                              "whole_a": sum(len(r["a"]) == 1 for r in rows),
                              "whole_b": sum(len(r["b"]) == 1 for r in rows),
                              "vocab_a": len(tokenizer_a), "vocab_b": len(tokenizer_b)}
    if sentences:
        result["corpus_a"] = pieces_per_word(tokenizer_a, sentences)
        result["corpus_b"] = pieces_per_word(tokenizer_b, sentences)
    return result
