"""BERT WordPiece tokenizer: specials, template, segments, truncation, words, files, HF parity."""

import gzip
import pickle

import pytest
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers

from aiayn.errors import ConfigError, DataError
from aiayn.tokenizers import (
    BertEncoding,
    BertTokenizer,
    load_bert_tokenizer,
    train_bert_tokenizer,
    train_bert_tokenizer_on_texts,
)

CORPUS = (
    "The quick brown fox jumps over the lazy dog.\n"
    "A cat sat on the mat, and the dog was playing outside!\n"
    "Playing games is fun; players played all day.\n"
    "Café au lait costs two euros in Zürich.\n"
    "She said: it's a beautiful morning in the garden.\n"
) * 10


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok(corpus_file):
    return train_bert_tokenizer(corpus_file, vocab_size=150, min_frequency=2)


def tokens(tok, enc):
    return [tok.id_to_token(i) for i in enc.ids]


def one_line(err):
    return "\n" not in str(err.value)


# ----------------------------------------------------------------------- specials, template
def test_trained_vocabulary_starts_with_the_specials(tok):
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert [tok.id_to_token(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.special_ids == frozenset(range(5))
    assert isinstance(tok.special_ids, frozenset)
    assert 5 < tok.vocab_size <= 150
    assert tok.token_to_id("[MASK]") == 4 and tok.token_to_id("no-such-token") is None


def test_single_text_is_cls_text_sep(tok):
    enc = tok.encode("The dog sat.")
    assert isinstance(enc, BertEncoding)
    assert tokens(tok, enc)[0] == "[CLS]" and tokens(tok, enc)[-1] == "[SEP]"
    assert enc.ids[1:-1] == tok.backend.encode("The dog sat.", add_special_tokens=False).ids
    assert enc.segments == [0] * len(enc) and len(enc.words) == len(enc)


def test_pair_is_cls_a_sep_b_sep_with_segments(tok):
    a, b = "The cat sat on the mat.", "A dog was playing."
    enc = tok.encode(a, b)
    ids_a, ids_b = (tok.encode(t).ids[1:-1] for t in (a, b))
    assert enc.ids == [tok.cls_id, *ids_a, tok.sep_id, *ids_b, tok.sep_id]
    # Segment 0 for "[CLS] A [SEP]", 1 for "B [SEP]" (BERT §3, Fig. 2).
    assert enc.segments == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)


def test_special_strings_in_text_are_text(tok):
    enc = tok.encode("the [SEP] dog [MASK] [CLS]")
    assert enc.ids.count(tok.sep_id) == 1 and tok.mask_id not in enc.ids
    assert enc.ids.count(tok.cls_id) == 1
    # ... also after a pickle round trip (DataLoader workers), which drops the library's switch.
    again = pickle.loads(pickle.dumps(tok))
    assert again.encode("the [SEP] dog [MASK] [CLS]") == enc


# ------------------------------------------------------------------------------ truncation
def test_truncation_removes_from_the_longer_text_first(tok):
    long = "the quick brown fox jumps over the lazy dog and the cat sat on the mat"
    short = "a dog."
    full = tok.encode(long, short)
    n_short = len(tok.encode(short)) - 2
    for max_len in (len(full) - 1, len(full) - 5, 2 * n_short + 3):
        for a, b in ((long, short), (short, long)):
            enc = tok.encode(a, b, max_len=max_len)
            assert len(enc) == max_len
            first_sep = enc.ids.index(tok.sep_id)
            kept_a, kept_b = enc.ids[1:first_sep], enc.ids[first_sep + 1 : -1]
            ids_a, ids_b = (tok.encode(t).ids[1:-1] for t in (a, b))
            # The short side stays whole; the long one keeps its beginning; specials stay.
            assert (kept_a, kept_b) == (
                (ids_a[: len(kept_a)], ids_b) if a == long else (ids_a, ids_b[: len(kept_b)])
            )
            assert enc.ids[0] == tok.cls_id and enc.ids[-1] == tok.sep_id
            assert enc.ids.count(tok.sep_id) == 2
            assert enc.segments == [0] * (len(kept_a) + 2) + [1] * (len(kept_b) + 1)


def test_truncation_of_two_long_texts_shares_the_room(tok):
    a = "the quick brown fox jumps over the lazy dog"
    b = "she said it is a beautiful morning in the garden"
    enc = tok.encode(a, b, max_len=11)  # 8 tokens of text
    first_sep = enc.ids.index(tok.sep_id)
    n_a, n_b = first_sep - 1, len(enc) - first_sep - 2
    assert len(enc) == 11 and n_a + n_b == 8 and abs(n_a - n_b) <= 1


def test_truncation_of_one_text_and_limits(tok):
    text = "the quick brown fox jumps over the lazy dog"
    enc = tok.encode(text, max_len=5)
    assert enc.ids == [tok.cls_id, *tok.encode(text).ids[1:4], tok.sep_id]
    assert tok.encode(text, max_len=1000) == tok.encode(text)  # short enough: unchanged
    assert tok.encode(text, max_len=2).ids == [tok.cls_id, tok.sep_id]
    with pytest.raises(ConfigError, match="max_len=1 leaves no room") as err:
        tok.encode(text, max_len=1)
    assert one_line(err)
    with pytest.raises(ConfigError, match="max_len=2"):
        tok.encode(text, "a pair", max_len=2)
    # Truncation is per call: the backend (and the fingerprint) keep no trace of it.
    assert tok.backend.truncation is None
    assert tok.encode(text) == tok.encode(text, max_len=None)


def test_encode_batch_equals_encode(tok):
    texts = ["The cat sat.", "Playing games is fun; players played all day.", ""]
    pairs = ["A dog.", "", "Café au lait in Zürich!"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, pairs) == [
        tok.encode(t, p) for t, p in zip(texts, pairs, strict=True)
    ]
    assert tok.encode_batch(texts, pairs, max_len=7) == [
        tok.encode(t, p, max_len=7) for t, p in zip(texts, pairs, strict=True)
    ]
    with pytest.raises(ValueError, match="3 texts but 2 pairs"):
        tok.encode_batch(texts, pairs[:2])


# ----------------------------------------------------------------------------------- words
def test_words_map_each_token_to_its_word(tok):
    a, b = "Beautiful morning, players!", "the garden was zzz"
    assert len(tok.tokenize("beautiful")) > 1  # split into pieces by this small vocabulary
    enc = tok.encode(a, b)
    toks = tokens(tok, enc)
    for i, (token, word) in enumerate(zip(toks, enc.words, strict=True)):
        assert (word is None) == (token in ("[CLS]", "[SEP]"))
        if token.startswith("##"):  # a continuation belongs to the word before it
            assert word == enc.words[i - 1]
        elif word is not None and i > 0 and enc.words[i - 1] is not None:
            assert word == enc.words[i - 1] + 1  # a new word starts
    words_a = {w for w, s in zip(enc.words, enc.segments, strict=True) if w is not None and s == 0}
    words_b = {w for w, s in zip(enc.words, enc.segments, strict=True) if w is not None and s == 1}
    # "beautiful" "morning" "," "players" "!" | "the" "garden" "was" "zzz": distinct indices.
    assert words_a == set(range(5)) and words_b == set(range(5, 9))


# -------------------------------------------------------------------------------- decoding
def test_decode_round_trip(tok):
    text = "The quick brown fox jumps over the lazy dog, and the cat sat on the mat!"
    enc = tok.encode(text)
    assert tok.decode(enc.ids) == text.lower()
    assert tok.decode(enc.ids, skip_special=False).startswith("[CLS] the quick")
    import torch

    assert tok.decode(torch.tensor(enc.ids)) == text.lower()


def test_uncased_strips_accents_and_cased_keeps_them(tok, corpus_file):
    assert tok.encode("Café in ZÜRICH") == tok.encode("cafe in zurich")
    cased = train_bert_tokenizer([corpus_file], vocab_size=200, lowercase=False)
    assert cased.decode(cased.encode("Café in Zürich").ids) == "Café in Zürich"
    assert cased.encode("Café").ids != cased.encode("cafe").ids
    assert "lowercase=False" in repr(cased) and "lowercase=True" in repr(tok)


# ---------------------------------------------------------------------------------- files
def test_save_and_load_give_the_same_tokenizer(tok, tmp_path):
    path = tok.save(tmp_path / "model")
    assert path == tmp_path / "model" / "tokenizer.json"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tokenizer.json"]  # no temp files
    for loaded in (load_bert_tokenizer(tmp_path / "model"), BertTokenizer.from_file(path)):
        assert loaded.fingerprint() == tok.fingerprint()
        assert loaded.special_ids == tok.special_ids and loaded.vocab_size == tok.vocab_size
        a, b = "Playing games in the garden.", "The dog sat, zzz!"
        assert loaded.encode(a, b, max_len=9) == tok.encode(a, b, max_len=9)
    assert load_bert_tokenizer(path).fingerprint() == tok.fingerprint()  # a file path works too


def test_training_reads_gzip_and_several_files(tmp_path, corpus_file):
    gz = tmp_path / "more.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write("zebras zebras zebras graze\n" * 5)
    tok = train_bert_tokenizer([corpus_file, gz], vocab_size=200, min_frequency=2)
    assert tok.tokenize("zebras") == ["zebras"]


def test_training_errors(tmp_path, corpus_file):
    with pytest.raises(ConfigError, match=r"vocab_size=20 is too small.*take \d+ entries") as err:
        train_bert_tokenizer(corpus_file, vocab_size=20)
    assert one_line(err)
    with pytest.raises(ConfigError, match="vocab_size=5"):
        train_bert_tokenizer(corpus_file, vocab_size=5)
    with pytest.raises(DataError, match="no such file") as err:
        train_bert_tokenizer(tmp_path / "missing.txt")
    assert str(tmp_path / "missing.txt") in str(err.value)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("good line\nCaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: invalid UTF-8") as err:
        train_bert_tokenizer(bad)
    assert one_line(err)


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(DataError, match="no such tokenizer file") as err:
        load_bert_tokenizer(tmp_path / "nowhere")
    assert f"{tmp_path / 'nowhere'}: " in str(err.value) and one_line(err)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no such tokenizer file") as err:
        load_bert_tokenizer(tmp_path / "empty")
    assert str(tmp_path / "empty" / "tokenizer.json") in str(err.value)
    with pytest.raises(DataError, match="is a directory"):
        BertTokenizer.from_file(tmp_path)

    corrupt = tmp_path / "corrupt" / "tokenizer.json"
    corrupt.parent.mkdir()
    corrupt.write_text('{"version": "1.0", "model": ', encoding="utf-8")
    with pytest.raises(DataError, match="corrupt tokenizer file") as err:
        load_bert_tokenizer(corrupt.parent)
    assert str(corrupt) in str(err.value) and one_line(err)

    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        BertTokenizer.from_file(binary)

    # A valid tokenizer, but not BERT's: no [CLS]/[SEP]/[MASK].
    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2}
    other = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    path = tmp_path / "other.json"
    other.save(str(path))
    with pytest.raises(
        DataError, match=r"not a BERT tokenizer: no \[CLS\], \[SEP\], \[MASK\]"
    ) as e:
        BertTokenizer.from_file(path)
    assert str(path) in str(e.value) and one_line(e)


# ------------------------------------------------------------------------------- HF parity
HF_VOCAB = [
    "[PAD]",
    "the", "cat", "sat", "on", "mat", "a", "dog", "play", "##ing", "##s", "was",
    "[UNK]", "[CLS]", "[SEP]", "[MASK]",  # not at 1..4: looked up by string, as bert-base's are
    ".", ",", "!", "'", "she", "said", "it", "good", "morn", "##ing", "garden", "in",
    "u", "##n", "##b", "##e", "##l", "##i", "##v", "##a", "##y", "cafe",
]  # fmt: skip


@pytest.fixture(scope="module")
def hf_tokenizer_dir(tmp_path_factory):
    from transformers import BertTokenizerFast

    directory = tmp_path_factory.mktemp("hf_bert")
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(dict.fromkeys(HF_VOCAB)) + "\n", encoding="utf-8")
    hf = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    hf.save_pretrained(str(directory))
    return directory, hf


HF_PAIRS = [
    ("The cat sat on the mat.", "A dog was playing!"),
    ("She said: it's a good morning, Café!", "unbelievably good cats in the garden"),
    ("", "the"),
    ("The cats sat, the dogs sat, the cat was playing in the garden.", "xylophone"),
]


def test_matches_hf_bert_tokenizer_fast(hf_tokenizer_dir):
    directory, hf = hf_tokenizer_dir
    ours = load_bert_tokenizer(directory)
    assert [ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id] == [0, 12, 13, 14, 15]
    assert ours.vocab_size == len(hf)
    for a, b in HF_PAIRS:
        expected = hf(a, b)
        enc = ours.encode(a, b)
        assert enc.ids == expected["input_ids"]
        assert enc.segments == expected["token_type_ids"]
        assert ours.decode(enc.ids) == hf.decode(expected["input_ids"], skip_special_tokens=True)
        for max_len in (6, 9):
            expected = hf(a, b, truncation="longest_first", max_length=max_len)
            enc = ours.encode(a, b, max_len=max_len)
            assert (enc.ids, enc.segments) == (
                expected["input_ids"],
                expected["token_type_ids"],
            )
        single = hf(a)["input_ids"]
        assert ours.encode(a).ids == single
    batch = ours.encode_batch([a for a, _ in HF_PAIRS], [b for _, b in HF_PAIRS])
    assert [e.ids for e in batch] == hf([a for a, _ in HF_PAIRS], [b for _, b in HF_PAIRS])[
        "input_ids"
    ]


def test_hf_loads_what_we_save(tok, tmp_path):
    from transformers import PreTrainedTokenizerFast

    path = tok.save(tmp_path)
    hf = PreTrainedTokenizerFast(tokenizer_file=str(path))
    a, b = "The cat was playing in the garden.", "Café au lait!"
    enc = tok.encode(a, b)
    expected = hf(a, b, return_token_type_ids=True)
    assert (expected["input_ids"], expected["token_type_ids"]) == (enc.ids, enc.segments)


def test_a_hand_built_backend_gets_specials_and_decoder():
    vocab = {"the": 0, "[PAD]": 1, "[UNK]": 2, "[CLS]": 3, "[SEP]": 4, "[MASK]": 5, "cat": 6}
    vocab["##s"] = 7
    backend = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer()
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = BertTokenizer(backend)
    assert tok.special_ids == frozenset({1, 2, 3, 4, 5}) and tok.pad_id == 1
    enc = tok.encode("The cats")
    assert enc.ids == [3, 0, 6, 7, 4] and enc.words == [None, 0, 1, 1, None]
    assert tok.decode(enc.ids) == "the cats"  # specials dropped, "##" pieces joined


def test_ids_are_numbered_canonically_and_texts_train_too(tmp_path):
    # the trainer numbers tokens in hash order; the ids are renumbered: specials, then sorted
    text = tmp_path / "t.txt"
    text.write_text(CORPUS * 3)
    for tok in (
        train_bert_tokenizer(text, vocab_size=120, min_frequency=1),
        train_bert_tokenizer_on_texts(CORPUS.splitlines() * 3, vocab_size=120, min_frequency=1),
    ):
        vocab = tok.backend.get_vocab()
        by_id = sorted(vocab, key=vocab.__getitem__)
        assert by_id[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert by_id[5:] == sorted(by_id[5:])
        ids = tok.encode("the quick brown fox").ids
        assert tok.unk_id not in ids and tok.decode(ids) == "the quick brown fox"
