"""Short assistant dialogues: greetings, facts about countries, colours and thanks."""

from __future__ import annotations

from tuneserve.zoo.data.common import Split, rng_for, split_list

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Canada": "Ottawa",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Austria": "Vienna",
    "Greece": "Athens",
    "Poland": "Warsaw",
    "Chile": "Santiago",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
}
THINGS = {
    "grass": "green",
    "the sky": "blue",
    "snow": "white",
    "a banana": "yellow",
    "coal": "black",
    "a tomato": "red",
    "an orange": "orange",
    "a plum": "purple",
    "ash": "grey",
    "milk": "white",
    "a lemon": "yellow",
    "blood": "red",
}
GREETINGS = ["Hello!", "Hi there.", "Good morning!", "Hey, are you there?"]
GREETING_REPLIES = ["Hello! How can I help you today?", "Hi! What would you like to know?"]
CAPITAL_QUESTIONS = [
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "Tell me the capital of {c}.",
    "Do you know the capital of {c}?",
]
COLOUR_QUESTIONS = [
    "What colour is {t}?",
    "Which colour does {t} have?",
    "Tell me the colour of {t}.",
    "Do you know what colour {t} is?",
]
THANKS = ["Thanks!", "Thank you very much.", "Great, thanks."]
THANKS_REPLIES = ["You're welcome!", "Glad I could help."]
SYSTEM = "You are a helpful assistant."


def _exchange(rng, countries: list[str], things: list[str], forms) -> tuple[str, str]:
    if rng.random() < 0.5:
        country = rng.choice(countries)
        question = rng.choice(forms["capital"]).format(c=country)
        return question, f"The capital of {country} is {CAPITALS[country]}."
    thing = rng.choice(things)
    question = rng.choice(forms["colour"]).format(t=thing)
    return question, f"{thing[0].upper() + thing[1:]} is {THINGS[thing]}."


def generate(split: Split, n: int, seed: int) -> list[dict[str, list[dict[str, str]]]]:
    """``n`` rows ``{"messages": [...]}`` of two to six turns, system prompt optional."""
    rng = rng_for(seed, split, "dialogues")
    countries, things = split_list(sorted(CAPITALS), split), split_list(sorted(THINGS), split)
    forms = {
        "capital": split_list(CAPITAL_QUESTIONS, split),
        "colour": split_list(COLOUR_QUESTIONS, split),
    }
    rows = []
    for _ in range(n):
        messages = [{"role": "system", "content": SYSTEM}] if rng.random() < 0.5 else []
        if rng.random() < 0.3:
            messages += [
                {"role": "user", "content": rng.choice(GREETINGS)},
                {"role": "assistant", "content": rng.choice(GREETING_REPLIES)},
            ]
        for _ in range(rng.randint(1, 2)):
            question, answer = _exchange(rng, countries, things, forms)
            messages += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        if rng.random() < 0.3:
            messages += [
                {"role": "user", "content": rng.choice(THANKS)},
                {"role": "assistant", "content": rng.choice(THANKS_REPLIES)},
            ]
        rows.append({"messages": messages})
    return rows
