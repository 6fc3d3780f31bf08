"""Product and film reviews with a positive or negative label."""

from __future__ import annotations

from tuneserve.zoo.data.common import Split, rng_for, split_list

POSITIVE = [
    "great",
    "wonderful",
    "excellent",
    "fantastic",
    "delightful",
    "superb",
    "brilliant",
    "lovely",
    "charming",
    "impressive",
    "enjoyable",
    "amazing",
    "beautiful",
    "solid",
    "outstanding",
    "pleasant",
    "terrific",
    "moving",
    "clever",
    "perfect",
]
NEGATIVE = [
    "terrible",
    "awful",
    "boring",
    "dreadful",
    "disappointing",
    "poor",
    "horrible",
    "dull",
    "bad",
    "weak",
    "annoying",
    "mediocre",
    "painful",
    "clumsy",
    "tedious",
    "broken",
    "ugly",
    "pointless",
    "lousy",
    "useless",
]
SUBJECTS = [
    "movie",
    "film",
    "book",
    "phone",
    "restaurant",
    "hotel",
    "album",
    "show",
    "game",
    "camera",
    "laptop",
    "story",
    "service",
    "meal",
    "concert",
    "play",
    "app",
    "series",
    "course",
    "coffee",
]
INTENSIFIERS = ["really", "truly", "quite", "very", "so", "absolutely", "rather", "incredibly"]
TEMPLATES = [
    "the {subject} was {adj}.",
    "what a {adj} {subject}!",
    "i found the {subject} {intensifier} {adj}.",
    "this {subject} is {intensifier} {adj}.",
    "honestly, a {adj} {subject} from start to finish.",
    "my friends said the {subject} was {adj}, and they were right.",
    "overall the {subject} felt {adj}.",
    "{intensifier} {adj} {subject}, would say the same again.",
    "the {subject} turned out to be {adj}.",
    "i think this is a {adj} {subject}.",
    "a {intensifier} {adj} {subject} with a {adj2} ending.",
    "we all agreed: {adj}.",
]


def generate(split: Split, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` rows ``{"text", "label"}``, balanced between the two labels."""
    rng = rng_for(seed, split, "sentiment")
    words = {"positive": split_list(POSITIVE, split), "negative": split_list(NEGATIVE, split)}
    subjects, templates = split_list(SUBJECTS, split), split_list(TEMPLATES, split)
    rows = []
    for index in range(n):
        label = "positive" if index % 2 == 0 else "negative"
        text = rng.choice(templates).format(
            subject=rng.choice(subjects),
            adj=rng.choice(words[label]),
            adj2=rng.choice(words[label]),
            intensifier=rng.choice(INTENSIFIERS),
        )
        rows.append({"text": text[0].upper() + text[1:], "label": label})
    return rows
