"""Sentences with people, places, organisations and miscellaneous names, tagged in IOB2."""

from __future__ import annotations

from tuneserve.zoo.data.common import Split, rng_for, split_list

FIRST_NAMES = [
    "Anna",
    "Peter",
    "Maria",
    "John",
    "Fatima",
    "Wei",
    "Carlos",
    "Olga",
    "James",
    "Aisha",
    "Lars",
    "Sofia",
    "Kenji",
    "Emma",
    "David",
    "Priya",
    "Mateo",
    "Chloe",
    "Ivan",
    "Grace",
    "Hassan",
    "Laura",
    "Tom",
    "Nadia",
]
LAST_NAMES = [
    "Schmidt",
    "Smith",
    "Garcia",
    "Chen",
    "Novak",
    "Okafor",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Tanaka",
    "Jensen",
    "Silva",
    "Murphy",
    "Ivanova",
    "Patel",
    "Cohen",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Brown",
]
LOCATIONS = [
    "Berlin",
    "Paris",
    "Tokyo",
    "New York",
    "Cairo",
    "Madrid",
    "Toronto",
    "Sydney",
    "Rome",
    "Lagos",
    "Mumbai",
    "Oslo",
    "Chicago",
    "Vienna",
    "Lima",
    "Seoul",
    "Germany",
    "France",
    "Brazil",
    "Kenya",
    "Canada",
    "Japan",
    "Hong Kong",
    "Buenos Aires",
    "Los Angeles",
    "San Francisco",
    "Rio de Janeiro",
    "Cape Town",
    "New Delhi",
    "South Africa",
    "United States",
    "Mexico City",
    "Kuala Lumpur",
    "Tel Aviv",
    "Abu Dhabi",
    "Sri Lanka",
    "Hamburg",
    "Lisbon",
    "Warsaw",
    "Dublin",
]
ORGANISATIONS = [
    "Siemens",
    "the United Nations",
    "Google",
    "Reuters",
    "Toyota",
    "the World Bank",
    "Oxford University",
    "Nestle",
    "the European Commission",
    "Microsoft",
    "Unilever",
    "the Red Cross",
    "Boeing",
    "Deutsche Bank",
    "Samsung",
    "the BBC",
    "Airbus",
    "Intel",
    "the IMF",
    "Shell",
    "General Motors",
    "Volkswagen",
    "the Bank of England",
    "Sony",
    "Nokia",
    "Harvard University",
    "the Federal Reserve",
    "Amnesty International",
    "Ford",
    "Barclays",
    "the African Union",
    "Goldman Sachs",
    "Lufthansa",
    "Greenpeace",
    "the World Health Organization",
    "Pfizer",
]
MISC = [
    "German",
    "French",
    "Olympic",
    "Japanese",
    "Christmas",
    "Brazilian",
    "Italian",
    "Nobel",
    "Canadian",
    "World Cup",
    "Spanish",
    "Kenyan",
    "Euro",
    "Grammy",
    "Indian",
    "Danish",
    "Dutch",
    "Oscar",
    "Chinese",
    "Tour de France",
    "Mexican",
    "Swedish",
    "Champions League",
    "Turkish",
]
TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} said on Tuesday that profits rose .",
    "The {MISC} team beat its rivals in {LOC} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Shares of {ORG} fell after {PER} resigned .",
    "{PER} met {PER} in {LOC} last week .",
    "The {MISC} government signed a deal with {ORG} .",
    "Police in {LOC} arrested two men , {PER} told reporters .",
    "{ORG} will open a new office in {LOC} next year .",
    "{PER} won the {MISC} prize for her novel .",
    "Fans in {LOC} celebrated the {MISC} victory .",
    "According to {PER} , {ORG} plans to hire staff .",
    "Talks between {ORG} and {ORG} ended in {LOC} .",
    "The {MISC} minister {PER} visited {LOC} .",
    "Rain delayed the match in {LOC} , said {PER} .",
    "Yesterday {PER} announced that {ORG} would leave {LOC} .",
    "Officials from {ORG} arrived in {LOC} on Friday .",
    "In {LOC} , thousands watched the {MISC} final .",
    "A court in {LOC} fined {ORG} for fraud .",
    "Critics praised the {MISC} film directed by {PER} .",
    "Last year {ORG} bought a factory near {LOC} .",
    "Storms hit {LOC} and {LOC} overnight .",
    "Former president {PER} praised {ORG} .",
    "Sales at {ORG} grew strongly , analysts said .",
    "The match between {LOC} and {LOC} ended in a draw .",
    "Coach {PER} said the {MISC} squad was ready .",
    "Workers at {ORG} went on strike in {LOC} .",
    "Traffic was slow in {LOC} after the {MISC} parade .",
    "Doctors told {PER} to rest for a week .",
    "Both {PER} and {PER} joined {ORG} in May .",
    "Prices rose in {LOC} , the statement from {ORG} said .",
]


def _entity(kind: str, rng, lists) -> list[str]:
    if kind == "PER":
        name = [rng.choice(lists["first"])]
        return [*name, rng.choice(lists["last"])] if rng.random() < 0.7 else name
    return rng.choice(lists[kind]).split()


def generate(split: Split, n: int, seed: int) -> list[dict[str, list[str]]]:
    """``n`` rows ``{"tokens", "tags"}`` with IOB2 tags over PER, LOC, ORG and MISC."""
    rng = rng_for(seed, split, "entities")
    lists = {
        "first": split_list(FIRST_NAMES, split),
        "last": split_list(LAST_NAMES, split),
        "LOC": split_list(LOCATIONS, split),
        "ORG": split_list(ORGANISATIONS, split),
        "MISC": split_list(MISC, split),
    }
    templates = split_list(TEMPLATES, split)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for word in rng.choice(templates).split():
            kind = word.strip("{}") if word.startswith("{") else None
            if kind is None:
                tokens.append(word)
                tags.append("O")
                continue
            pieces = _entity(kind, rng, lists)
            tokens.extend(pieces)
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(pieces) - 1))
        rows.append({"tokens": tokens, "tags": tags})
    return rows
