"""Short biographies of two or three people, with questions answered by a span."""

from __future__ import annotations

from tuneserve.zoo.data.common import Split, rng_for, split_list
from tuneserve.zoo.data.entities import FIRST_NAMES, LAST_NAMES, LOCATIONS, ORGANISATIONS

JOBS = [
    "doctor",
    "teacher",
    "pilot",
    "chemist",
    "baker",
    "lawyer",
    "nurse",
    "architect",
    "journalist",
    "farmer",
    "engineer",
    "painter",
    "librarian",
    "dentist",
    "plumber",
    "chef",
]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "pink"]
# (fact, sentence forms, questions); {n} is the person, {v} the answer
FACTS = {
    "city": (
        [
            "{n} was born in {v}.",
            "{n} grew up in {v}.",
            "Born in {v}, {n} never left.",
            "{n} comes from {v}.",
        ],
        [
            "Where was {n} born?",
            "Which city is {n} from?",
            "Where did {n} grow up?",
            "In which place was {n} born?",
        ],
    ),
    "year": (
        [
            "{n} was born in {v}.",
            "In {v}, {n} came into the world.",
            "{n}'s birth year is {v}.",
            "{n} arrived in {v}.",
        ],
        [
            "When was {n} born?",
            "In what year was {n} born?",
            "What year was {n} born in?",
            "Which year did {n} arrive?",
        ],
    ),
    "job": (
        [
            "{n} works as a {v}.",
            "By trade, {n} is a {v}.",
            "{n} has been a {v} for years.",
            "{n} earns a living as a {v}.",
        ],
        [
            "What does {n} do for a living?",
            "What is {n}'s job?",
            "What is the profession of {n}?",
            "What does {n} work as?",
        ],
    ),
    "employer": (
        [
            "{n} is employed by {v}.",
            "{n} joined {v} last year.",
            "{n} works at {v}.",
            "{n} took a position at {v}.",
        ],
        [
            "Who employs {n}?",
            "Where does {n} work?",
            "Which organisation does {n} work for?",
            "Who did {n} join?",
        ],
    ),
    "colour": (
        [
            "{n}'s favourite colour is {v}.",
            "{n} loves the colour {v}.",
            "{n} prefers {v}.",
            "Above all, {n} likes {v}.",
        ],
        [
            "What is {n}'s favourite colour?",
            "Which colour does {n} like most?",
            "What colour does {n} prefer?",
            "What colour is {n}'s favourite?",
        ],
    ),
}


def _person(rng, lists, first: str, last: str) -> dict[str, str]:
    return {
        "name": f"{first} {last}",
        "city": rng.choice(lists["city"]),
        "year": str(rng.randint(1931, 2009)),
        "job": rng.choice(lists["job"]),
        "employer": rng.choice(lists["employer"]),
        "colour": rng.choice(lists["colour"]),
    }


def generate(split: Split, n: int, seed: int) -> list[dict]:
    """``n`` SQuAD-style rows ``{"question", "context", "answers"}``."""
    rng = rng_for(seed, split, "qa")
    lists = {
        "first": split_list(FIRST_NAMES, split),
        "last": split_list(LAST_NAMES, split),
        "city": split_list(LOCATIONS, split),
        "employer": split_list(ORGANISATIONS, split),
        "job": split_list(JOBS, split),
        "colour": split_list(COLOURS, split),
    }
    forms = {fact: (split_list(s, split), split_list(q, split)) for fact, (s, q) in FACTS.items()}
    rows = []
    for _ in range(n):
        count = rng.randint(2, 3)  # distinct first and last names: no two "Chen"s to confuse
        names = zip(
            rng.sample(lists["first"], count), rng.sample(lists["last"], count), strict=True
        )
        people = [_person(rng, lists, first, last) for first, last in names]
        context, spans = "", {}
        for person_index, person in enumerate(people):
            for fact in rng.sample(sorted(FACTS), k=rng.randint(2, 3)):
                sentence = rng.choice(forms[fact][0])
                prefix = sentence.split("{v}")[0].format(n=person["name"])
                spans[(person_index, fact)] = len(context) + len(prefix)
                context += sentence.format(n=person["name"], v=person[fact]) + " "
        (person_index, fact), start = rng.choice(sorted(spans.items()))
        answer = people[person_index][fact]
        question = rng.choice(forms[fact][1]).format(n=people[person_index]["name"])
        rows.append(
            {
                "question": question,
                "context": context.strip(),
                "answers": {"text": [answer], "answer_start": [start]},
            }
        )
    return rows
