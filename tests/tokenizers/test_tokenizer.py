"""Tokenizer: special-token ids, encoding/decoding, exact round trips, save/load, errors."""

import json
import pickle
import unicodedata

import pytest
import tokenizers
import torch

from aiayn.errors import DataError
from aiayn.tokenizers import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    train_bpe,
    train_wordpiece,
)

# A few dozen parallel-corpus-like lines; enough for a few hundred merges in well under a second.
CORPUS = [
    "A man in an orange hat starring at something.",
    "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
    "A little girl climbing into a wooden playhouse.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "Two young guys with shaggy hair look at their hands while hanging out in the yard.",
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Several men in hard hats are operating a giant pulley system.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster.",
    "Two men are at the stove preparing food.",
    "Zwei Männer stehen am Herd und bereiten Essen zu.",
    "A man in green holds a guitar while the other man observes his shirt.",
    "Ein Mann in Grün hält eine Gitarre, während der andere Mann sein Hemd ansieht.",
    "A man is smiling at a stuffed lion.",
    "Ein Mann lächelt einen ausgestopften Löwen an.",
    "A trendy girl talking on her cellphone while gliding slowly down the street.",
    "Ein schickes Mädchen spricht mit dem Handy während sie langsam die Straße entlangschwebt.",
    "A woman with a large purse is walking by a gate.",
    "Eine Frau mit einer großen Geldbörse geht an einem Tor vorbei.",
    "Boys dancing on poles in the middle of the night.",
    "Jungen tanzen mitten in der Nacht auf Pfosten.",
    "Une femme joue du piano « avec élégance » à Noël.",
    "Un garçon mange une crème brûlée près de la fenêtre.",
]

# Strings the tokenizer never saw, all in NFC, each stressing one thing decoding must restore.
ROUND_TRIP = [
    "Äpfel, Öl und Übermut: süß, schön, größer.",  # umlauts, ß
    "STRASSE, Straße und ẞ",  # capital sharp s (U+1E9E)
    "Ça, c'est l'été à Noël — où êtes-vous ? « Très bien ! »",  # French accents, guillemets
    "„Anführungszeichen“, ‚einfache‘, \"double\", 'single', “curly”",  # quotes of all kinds
    "zwei  Leerzeichen,   drei und\tTab",  # runs of spaces, a tab
    "  leading and trailing spaces  ",
    "line one\nline two\r\n",  # newlines inside a string
    "ﬁ ligature, ½, ², Ⅳ, ｆｕｌｌｗｉｄｔｈ",  # compatibility characters: NFC leaves them alone
    "Emoji 😀👍🏽 and 東京 and Ελληνικά and العربية",  # characters absent from training
    "Price: 3.50€, 100%, #hashtag ##double ＃＃fullwidth, a_b, x@y.z",
    "",
]


@pytest.fixture(scope="module", params=["bpe", "wordpiece"])
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    if request.param == "bpe":
        return train_bpe(iter(CORPUS), vocab_size=400, min_frequency=2)
    return train_wordpiece(iter(CORPUS), vocab_size=600, min_frequency=2)  # needs ≥ 516


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return train_bpe(iter(CORPUS), vocab_size=400)


def test_special_tokens_have_fixed_ids(tokenizer: Tokenizer) -> None:
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    assert SPECIAL_TOKENS == ("<pad>", "<s>", "</s>", "<unk>")
    for id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == id
        assert tokenizer.id_to_token(id) == token


def test_vocab_size_counts_every_id(tokenizer: Tokenizer) -> None:
    assert tokenizer.vocab_size in (400, 600)  # reached: the corpus has enough frequent pairs
    assert tokenizer.id_to_token(tokenizer.vocab_size - 1) is not None
    assert tokenizer.id_to_token(tokenizer.vocab_size) is None


def test_encode_frames_with_bos_and_eos(tokenizer: Tokenizer) -> None:
    text = "Ein Mann in einem blauen Hemd."
    body = tokenizer.encode(text, add_eos=False)
    assert len(body) > 1 and not set(body) & {PAD_ID, BOS_ID, EOS_ID, UNK_ID}
    assert tokenizer.encode(text) == [*body, EOS_ID]  # default: encoder input / target
    assert tokenizer.encode(text, add_bos=True, add_eos=False) == [BOS_ID, *body]  # decoder input
    assert tokenizer.encode(text, add_bos=True) == [BOS_ID, *body, EOS_ID]
    assert tokenizer.encode("") == [EOS_ID]


def test_encode_batch_equals_encode(tokenizer: Tokenizer) -> None:
    texts = CORPUS + ROUND_TRIP
    for kwargs in [{}, {"add_bos": True}, {"add_bos": True, "add_eos": False}]:
        expected = [tokenizer.encode(t, **kwargs) for t in texts]
        assert tokenizer.encode_batch(texts, **kwargs) == expected
    assert tokenizer.encode_batch(t for t in texts) == tokenizer.encode_batch(texts)  # generator
    assert tokenizer.encode_batch([]) == []


def test_subwords_are_learned(bpe: Tokenizer) -> None:
    # Frequent words become single tokens; the first word of a sentence has no leading "Ġ".
    assert bpe.tokenize("Ein Mann") == ["Ein", "ĠMann"]
    text = "Zwei Männer in einem Hemd."
    assert len(bpe.encode(text, add_eos=False)) <= len(text.encode()) / 3


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_decode_restores_text_exactly(tokenizer: Tokenizer, text: str) -> None:
    assert unicodedata.is_normalized("NFC", text)  # the guarantee covers NFC text
    ids = tokenizer.encode(text, add_bos=True)
    assert UNK_ID not in ids  # byte-level: every character is representable
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text


def test_decode_batch_restores_texts(tokenizer: Tokenizer) -> None:
    texts = CORPUS + ROUND_TRIP
    assert tokenizer.decode_batch(tokenizer.encode_batch(texts, add_bos=True)) == texts


def test_special_token_strings_in_text_are_plain_text(tokenizer: Tokenizer) -> None:
    # A literal "</s>" in user text must not end the sentence (nor vanish when decoded).
    text = "a </s> b <s> c <pad> d <unk> e"
    ids = tokenizer.encode(text, add_eos=False)
    assert not set(ids) & {PAD_ID, BOS_ID, EOS_ID, UNK_ID}
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode_batch([text], add_eos=False) == [ids]


def test_decode_skips_special_tokens_unless_asked(tokenizer: Tokenizer) -> None:
    ids = [*tokenizer.encode("Ein Mann.", add_bos=True), PAD_ID, PAD_ID]
    assert tokenizer.decode(ids) == "Ein Mann."
    assert tokenizer.decode(ids, skip_special=False) == "<s>Ein Mann.</s><pad><pad>"


def test_decode_accepts_tensors(tokenizer: Tokenizer) -> None:
    texts = ["Zwei Männer stehen am Herd.", "Ein Mann."]
    ids = tokenizer.encode_batch(texts, add_bos=True)
    width = max(map(len, ids))
    padded = torch.tensor([row + [PAD_ID] * (width - len(row)) for row in ids])  # (B, T)
    assert tokenizer.decode_batch(padded) == texts
    assert tokenizer.decode(padded[0]) == texts[0]


def test_nfc_normalization_is_applied(bpe: Tokenizer) -> None:
    decomposed = "Cafe\u0301 Mu\u0308ller"  # NFD: e + combining acute, u + combining diaeresis
    assert bpe.decode(bpe.encode(decomposed)) == "Café Müller"  # comes back composed (NFC)
    assert bpe.encode(decomposed) == bpe.encode("Café Müller")


def test_no_normalization_keeps_decomposed_text() -> None:
    tok = train_bpe(iter(CORPUS), vocab_size=300, normalization=None)
    decomposed = "Cafe\u0301 Mu\u0308ller"
    assert tok.decode(tok.encode(decomposed)) == decomposed


def test_nfkc_normalization_folds_compatibility_characters() -> None:
    tok = train_bpe(iter(CORPUS), vocab_size=300, normalization="NFKC")
    assert tok.decode(tok.encode("ﬁ ½ ｆｕｌｌ")) == "fi 1⁄2 full"


def test_save_load_gives_identical_tokenizer(tokenizer: Tokenizer, tmp_path) -> None:
    path = tmp_path / "sub" / "tokenizer.json"
    tokenizer.save(path)
    loaded = Tokenizer.load(path)
    texts = CORPUS + ROUND_TRIP + ["a </s> b"]
    assert loaded.encode_batch(texts, add_bos=True) == tokenizer.encode_batch(texts, add_bos=True)
    assert loaded.vocab_size == tokenizer.vocab_size
    assert repr(loaded) == repr(tokenizer)
    assert loaded.decode_batch(loaded.encode_batch(texts)) == texts
    # Saving the loaded tokenizer reproduces the file byte for byte: nothing is lost on the way.
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob("**/*.tmp"))


def test_pickle_keeps_behaviour(tokenizer: Tokenizer) -> None:
    # DataLoader workers receive the tokenizer pickled.
    clone = pickle.loads(pickle.dumps(tokenizer))
    texts = [*ROUND_TRIP, "a </s> b"]
    assert clone.encode_batch(texts) == tokenizer.encode_batch(texts)


def test_repr_names_model_and_normalization(tokenizer: Tokenizer) -> None:
    assert f"vocab_size={tokenizer.vocab_size}" in repr(tokenizer)
    assert "normalization=NFC" in repr(tokenizer)
    assert type(tokenizer.backend.model).__name__ in repr(tokenizer)


def test_load_missing_file_names_it(tmp_path) -> None:
    path = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(DataError, match="not found") as info:
        Tokenizer.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["", "{not json", '{"version": "1.0"}', "[1, 2, 3]"])
def test_load_corrupt_file_gives_one_line_error(tmp_path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(DataError, match="corrupt tokenizer file") as info:
        Tokenizer.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_truncated_file(bpe: Tokenizer, tmp_path) -> None:
    path = tmp_path / "tokenizer.json"
    bpe.save(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt") as info:
        Tokenizer.load(path)
    assert str(path) in str(info.value)


def test_load_directory_points_to_pair(tmp_path) -> None:
    with pytest.raises(DataError, match="TokenizerPair"):
        Tokenizer.load(tmp_path)


def test_load_foreign_tokenizer_with_other_special_tokens(tmp_path) -> None:
    # A valid tokenizers file whose special tokens are not ours (here BERT-style ids).
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"[PAD]": 0, "x": 1}, "[PAD]"))
    backend.add_special_tokens(["[PAD]"])
    path = tmp_path / "tokenizer.json"
    backend.save(str(path))
    with pytest.raises(DataError, match=r"not made by aiayn.*'<pad>' at id 0") as info:
        Tokenizer.load(path)
    assert str(path) in str(info.value)


def test_load_rejects_reordered_special_tokens(bpe: Tokenizer, tmp_path) -> None:
    # Swapping the ids of <s> and </s> in the file must not go unnoticed.
    data = json.loads(bpe.backend.to_str())
    data["added_tokens"][1]["content"], data["added_tokens"][2]["content"] = "</s>", "<s>"
    data["model"]["vocab"]["<s>"], data["model"]["vocab"]["</s>"] = 2, 1
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="'<s>' at id 1"):
        Tokenizer.load(path)


def test_constructor_rejects_backend_without_special_tokens() -> None:
    with pytest.raises(ValueError, match="<pad>"):
        Tokenizer(tokenizers.Tokenizer(tokenizers.models.BPE()))
