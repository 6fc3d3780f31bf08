"""The translation starter's real text (the Ding dictionary), its tokenizer and its decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tuneserve.settings import Settings
from tuneserve.tasks.handlers.translation import LENGTH_RATIO, LENGTH_SLACK, TranslationHandler
from tuneserve.tasks.translation import TranslationItem
from tuneserve.zoo.corpora import DING_DE_EN, is_sentence
from tuneserve.zoo.recipes import RECIPES
from tuneserve.zoo.tokenizers import train_seq2seq_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DING = ROOT / ".tuneserve" / "corpora" / DING_DE_EN.file

# lines in the dictionary's own format, as trans-de-en ships it
SAMPLE = """# Version :: devel 2023-01-30
# License :: GPL Version 2 or later; GNU General Public License
Aal {m} [zool.] | Aale {pl} :: eel | eels
Aalreuse {f}; Aalkorb {m} | Aalreusen {pl} :: eel trap; weel [archaic] <weely> | eel traps
Apfel {m} | Äpfel {pl} | einen Apfel essen :: apple | apples
jdm. etw. geben {vt} :: to give sb. sth.
Er hat den Hund gefüttert. :: He fed the dog.
Sie hat es nicht gewusst. (Anmerkung) :: She didn’t know it.
Wir gehen heute (ins Kino). :: We are going today.
"""


def test_the_dictionary_reader_cleans_aligns_and_drops_placeholders(tmp_path):
    sample = tmp_path / "de-en"
    sample.write_text(SAMPLE)
    rows = {row["source"]: row["target"] for row in DING_DE_EN.read(sample)}
    assert rows["eel"] == "Aal" and rows["eels"] == "Aale"  # sub-entries aligned by " | "
    assert rows["eel trap"] == "Aalreuse" and rows["weel"] == "Aalkorb"  # synonyms, marks gone
    assert "eel traps" in rows
    assert "apple" not in rows  # three German sub-entries, two English: the line is left out
    assert not any("sb." in source for source in rows)  # placeholders are not text
    assert rows["She didn't know it."] == "Sie hat es nicht gewusst."  # ’ → ', gloss dropped
    sentences = [row for row in DING_DE_EN.read(sample) if is_sentence(row)]
    assert len(sentences) == 3


def test_held_out_rows_are_sentences_and_sentences_are_trained_on_first(tmp_path):
    sample = tmp_path / "de-en"
    sample.write_text(SAMPLE)
    train, heldout = DING_DE_EN.split(sample, train_rows=4, heldout_rows=1, seed=3)
    assert len(heldout) == 1 and is_sentence(heldout[0])
    assert sum(is_sentence(row) for row in train) == 2  # every other sentence is trained on
    assert heldout[0] not in train and len(train) == 4


@pytest.mark.skipif(not DING.is_file(), reason="`make install` copies Debian's trans-de-en")
def test_the_installed_dictionary_has_tens_of_thousands_of_sentences():
    rows = DING_DE_EN.read(DING)
    sentences = [row for row in rows if is_sentence(row)]
    assert len(rows) > 300_000 and len(sentences) > 15_000
    assert not any("{" in r["target"] or "[" in r["source"] for r in rows)
    train, heldout = DING_DE_EN.split(DING, 60_000, 400, seed=13)
    assert all(map(is_sentence, heldout))
    assert not {r["source"] for r in heldout} & {r["source"] for r in train}


def test_the_tokenizer_spells_unseen_characters_as_bytes():
    tokenizer = train_seq2seq_tokenizer(["ein Mann fährt Rad.", "a man rides a bike."], 60)
    text = "Ein Mann fährt 自転車 😀 nach Zürich."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.tokenize("Rad.")[-1] == "."  # punctuation split from the word


def _untrained_handler() -> TranslationHandler:
    """The tiny profile's model before training: greedy decoding of one repeats itself, as a
    weak model does."""
    recipe = RECIPES["translate-en-de"]
    rows = [recipe.spec.Row(**row) for row in recipe.data.generate("train", 32, seed=5)]
    torch.manual_seed(0)
    handler = recipe.create(Settings(), recipe.budgets["tiny"], rows)
    handler.model.eval()
    return handler


def test_decoding_never_repeats_a_trigram_and_stops_relative_to_the_source():
    handler = _untrained_handler()
    items = [
        TranslationItem(text="the man rides a bike", max_new_tokens=200),
        TranslationItem(text="a dog", max_new_tokens=200),
        TranslationItem(text="the man rides a bike", max_new_tokens=5),
    ]
    batch = handler.preprocess(items)
    unguarded = handler.model.generate(**batch.inputs, max_new_tokens=40, do_sample=False)
    assert _has_repeated_trigram(unguarded[0, 1:].tolist())  # the failure guarded against
    outputs = handler.forward(batch)
    sources = batch.inputs["attention_mask"].sum(dim=1).tolist()
    for row, item, n, limit in zip(outputs, items, sources, batch.meta["limits"], strict=True):
        assert limit == min(item.max_new_tokens, int(LENGTH_RATIO * n) + LENGTH_SLACK)
        written = [t for t in row[1 : 1 + limit].tolist() if t != handler.tokenizer.pad_token_id]
        assert not _has_repeated_trigram(written)
    assert batch.meta["limits"][2] == 5 and batch.meta["limits"][1] < batch.meta["limits"][0]
    assert len(handler.postprocess(batch, outputs)) == 3


def _has_repeated_trigram(ids: list[int]) -> bool:
    trigrams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
    return len(trigrams) != len(set(trigrams))
