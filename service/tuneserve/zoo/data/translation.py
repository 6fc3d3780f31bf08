"""English → German sentences from a small grammar with real German word order and case.

Held-out sentences use clause combinations never seen in training (a time phrase with a
place, a negated sentence with a place, …) and held-out names, which must be copied.
"""

from __future__ import annotations

from tuneserve.zoo.data.common import Split, rng_for, split_list
from tuneserve.zoo.data.entities import FIRST_NAMES

# English noun → (German nominative, German accusative)
NOUNS = {
    "the man": ("der Mann", "den Mann"),
    "the woman": ("die Frau", "die Frau"),
    "the child": ("das Kind", "das Kind"),
    "the dog": ("der Hund", "den Hund"),
    "the cat": ("die Katze", "die Katze"),
    "the teacher": ("der Lehrer", "den Lehrer"),
    "the doctor": ("die Ärztin", "die Ärztin"),
    "the bird": ("der Vogel", "den Vogel"),
    "the boy": ("der Junge", "den Jungen"),
    "the girl": ("das Mädchen", "das Mädchen"),
    "the farmer": ("der Bauer", "den Bauern"),
    "the student": ("die Studentin", "die Studentin"),
}
OBJECTS = {
    "the ball": "den Ball",
    "the book": "das Buch",
    "the apple": "den Apfel",
    "the car": "das Auto",
    "the door": "die Tür",
    "the letter": "den Brief",
    "the bread": "das Brot",
    "the house": "das Haus",
    "the bicycle": "das Fahrrad",
    "the newspaper": "die Zeitung",
    "the key": "den Schlüssel",
    "the picture": "das Bild",
    "the cake": "den Kuchen",
    "the flower": "die Blume",
    "the hat": "den Hut",
    "the bottle": "die Flasche",
}
VERBS = {
    "sees": "sieht",
    "buys": "kauft",
    "has": "hat",
    "finds": "findet",
    "likes": "mag",
    "carries": "trägt",
    "opens": "öffnet",
    "paints": "malt",
    "wants": "will",
    "needs": "braucht",
    "holds": "hält",
    "sells": "verkauft",
}
ADJECTIVES = {
    "tired": "müde",
    "happy": "glücklich",
    "hungry": "hungrig",
    "young": "jung",
    "old": "alt",
    "small": "klein",
    "tall": "groß",
    "angry": "wütend",
    "quiet": "still",
    "sad": "traurig",
}
PLACES = {
    "in the park": "im Park",
    "in the garden": "im Garten",
    "at the station": "am Bahnhof",
    "in the city": "in der Stadt",
    "in the kitchen": "in der Küche",
    "at school": "in der Schule",
    "at home": "zu Hause",
    "in the forest": "im Wald",
}
TIMES = {"today": "heute", "tomorrow": "morgen", "now": "jetzt", "often": "oft", "again": "wieder"}
# clause structures; held-out ones combine parts only ever seen apart in training
TEMPLATES = [
    "svo",
    "svo_place",
    "time_svo",
    "s_is_adj",
    "svo_neg",
    "svo_and_svo",
    "s_is_place",
    "time_svo_place",
    "svo_neg_place",
    "time_s_is_adj",
]
HELDOUT_TEMPLATES = {"time_svo_place", "svo_neg_place", "time_s_is_adj"}


def _sentence(template: str, rng, names: list[str]) -> tuple[str, str]:
    if rng.random() < 0.25:
        name = rng.choice(names)
        subject = (name, name, name)
    else:
        en = rng.choice(sorted(NOUNS))
        subject = (en, *NOUNS[en])
    verb = rng.choice(sorted(VERBS))
    obj = rng.choice(sorted(OBJECTS))
    adj, place, time = (rng.choice(sorted(d)) for d in (ADJECTIVES, PLACES, TIMES))
    s_en, s_de = subject[0], subject[1]
    v_de, o_de = VERBS[verb], OBJECTS[obj]
    parts = {
        "svo": (f"{s_en} {verb} {obj}", f"{s_de} {v_de} {o_de}"),
        "svo_place": (f"{s_en} {verb} {obj} {place}", f"{s_de} {v_de} {o_de} {PLACES[place]}"),
        "time_svo": (f"{time} {s_en} {verb} {obj}", f"{TIMES[time]} {v_de} {s_de} {o_de}"),
        "s_is_adj": (f"{s_en} is {adj}", f"{s_de} ist {ADJECTIVES[adj]}"),
        "svo_neg": (f"{s_en} does not want {obj}", f"{s_de} will {o_de} nicht"),
        "s_is_place": (f"{s_en} is {place}", f"{s_de} ist {PLACES[place]}"),
        "time_svo_place": (
            f"{time} {s_en} {verb} {obj} {place}",
            f"{TIMES[time]} {v_de} {s_de} {o_de} {PLACES[place]}",
        ),
        "svo_neg_place": (
            f"{s_en} does not want {obj} {place}",
            f"{s_de} will {o_de} {PLACES[place]} nicht",
        ),
        "time_s_is_adj": (f"{time} {s_en} is {adj}", f"{TIMES[time]} ist {s_de} {ADJECTIVES[adj]}"),
    }
    if template == "svo_and_svo":
        first, second = _sentence("svo", rng, names), _sentence("svo", rng, names)
        return f"{first[0][:-1]} and {second[0]}", f"{first[1][:-1]} und {second[1]}"
    en, de = parts[template]
    return f"{en}.", f"{de}."


def generate(split: Split, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` rows ``{"source", "target"}``; sentence-initial letters are capitalised."""
    rng = rng_for(seed, split, "translation")
    names = split_list(FIRST_NAMES, split)
    templates = [t for t in TEMPLATES if (t in HELDOUT_TEMPLATES) == (split == "heldout")]
    rows = []
    for _ in range(n):
        source, target = _sentence(rng.choice(templates), rng, names)
        rows.append(
            {"source": source[0].upper() + source[1:], "target": target[0].upper() + target[1:]}
        )
    return rows
