"""`aiayn demo`, the embedded default job, end to end on a short time budget."""

import json

from aiayn import translator
from aiayn.cli import main
from aiayn.tasks import number_demo
from aiayn.tasks.number_demo import DEMO_TRAIN, demo_train_config


def test_the_cosine_ends_where_the_time_budget_does():
    assert DEMO_TRAIN.schedule == "cosine"
    assert DEMO_TRAIN.decay_minutes == DEMO_TRAIN.max_minutes
    short = demo_train_config(0.5)
    assert short.max_minutes == short.decay_minutes == 0.5
    assert demo_train_config(None) == DEMO_TRAIN
    assert DEMO_TRAIN.precision == "auto"  # emulated bf16 would leave the demo a few steps


def test_demo_trains_translates_and_scores_the_unseen_numbers(tmp_path, capsys, monkeypatch):
    # On the CPU whatever the machine has (the demo's device is "auto").
    monkeypatch.setattr(
        number_demo, "demo_train_config", lambda m=None: demo_train_config(m).replace(device="cpu")
    )

    # A known answer: the test set's "translations" are its references for every 4th number
    # and a wrong word for the others, so exact match must be 1/4 (validation's are the model's).
    def references():
        return (tmp_path / "demo" / "data" / "test.de").read_text().splitlines()

    def doctored(model, tokenizers, sources, **kwargs):
        outputs = real_translate(model, tokenizers, sources, **kwargs)
        if len(sources) != 1000:  # the validation set, decoded while training
            return outputs
        return [r if i % 4 == 0 else "falsch" for i, r in enumerate(references())]

    real_translate = translator.translate_sentences
    monkeypatch.setattr(translator, "translate_sentences", doctored)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--max-minutes", "0.1", "--beam", "1", "--json"]
    assert main([*args, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test_sentences"] == 1000 and summary["steps"] > 0
    assert summary["exact_match"] == 0.25
    sources = (out / "data" / "test.en").read_text().splitlines()
    first = [[sources[0], references()[0], references()[0]]]
    first += [[sources[i], references()[i], "falsch"] for i in range(1, 4)]
    assert summary["samples"][:4] == first  # (English, reference, output), in test-set order
    saved = json.loads((out / "model" / "train_config.json").read_text())
    assert saved["max_minutes"] == saved["decay_minutes"] == 0.1
    assert saved["device"] == "cpu"
    assert (out / "cross_attention.png").stat().st_size > 0
    # a second demo into the same directory replaces the first instead of refusing
    assert main([*args, "--no-progress"]) == 0
