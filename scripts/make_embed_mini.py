"""Generate llmkit/assets/embed_mini: a small, deterministic mining set in llmkit's mining schema.

Three tasks, written from templates over fixed word lists (no download, no randomness outside the seed):
- people_qa (asymmetric retrieval): questions about fictional people -> the passage describing them;
  people share cities and jobs, so other passages make real hard negatives;
- paraphrase (symmetric): a sentence -> its paraphrase; the same subject in another scene is a hard negative;
- topic (classification, no in-batch negatives): a sentence -> the name of its topic.
Files: train.jsonl {task, query, positives}, corpus.jsonl {task, text}, tasks.json {task: instruction...}.

Run: python scripts/make_embed_mini.py [--out llmkit/assets/embed_mini] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST = ["Ada", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Luca",
         "Mira", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara"]
LAST = ["Almeida", "Brandt", "Castell", "Dorsey", "Eklund", "Ferro", "Galvan", "Holm", "Ivers", "Janssen"]
CITIES = ["Porto", "Leipzig", "Tromso", "Valencia", "Krakow", "Ghent", "Bergen", "Turin"]
JOBS = ["baker", "nurse", "architect", "carpenter", "pilot", "librarian", "chemist", "violinist"]
HOBBIES = ["rock climbing", "chess", "sailing", "pottery", "birdwatching", "running", "gardening", "painting"]

ANIMALS = ["fox", "cat", "horse", "dog", "rabbit", "goat", "deer", "owl"]
SCENES = [  # (sentence, paraphrase) with {a} for the animal
    ("The {a} ran across the field at dawn.", "At sunrise a {a} dashed over the meadow."),
    ("The {a} slept beside the warm fire.", "Next to the heated hearth, the {a} was asleep."),
    ("The {a} drank water from the river.", "From the stream, the {a} took a drink."),
    ("The {a} hid under the old wooden bridge.", "Beneath the aged timber bridge the {a} was hiding."),
    ("The {a} watched the children playing in the snow.", "Kids played in the snow while the {a} looked on."),
    ("The {a} climbed the hill behind the farm.", "Behind the farmhouse, the {a} went up the slope."),
    ("The {a} waited at the door for its owner.", "By the entrance the {a} stayed until its keeper came."),
    ("The {a} chased a leaf in the autumn wind.", "In the fall breeze the {a} ran after a leaf."),
    ("The {a} ate apples in the orchard.", "Among the fruit trees the {a} munched on apples."),
    ("The {a} crossed the road during the storm.", "While the storm raged, the {a} went over the street."),
    ("The {a} rested in the shade of a tall oak.", "Under a big oak's shadow the {a} took a break."),
    ("The {a} was frightened by the loud thunder.", "The booming thunder scared the {a}."),
    ("The {a} followed the hiker up the trail.", "Up the path, the {a} trailed behind the walker."),
    ("The {a} swam to the small island.", "To the little isle the {a} paddled through the water."),
    ("The {a} made a nest in the barn.", "Inside the barn the {a} built itself a nest."),
]

TOPICS = {
    "sports": ["The striker scored twice in the final minutes of the match.", "Our team won the relay race by a second.",
               "She trains at the stadium every morning before work.", "The referee showed a red card to the defender.",
               "He broke the national record in the long jump.", "The tennis final went to a fifth set.",
               "Fans cheered as the cyclists reached the summit.", "The coach changed tactics at half time."],
    "cooking": ["Simmer the onions slowly until they turn golden.", "Knead the dough for ten minutes and let it rise.",
                "Add a pinch of salt to the boiling pasta water.", "The soup needs more garlic and fresh thyme.",
                "Whisk the eggs with sugar until the mix is pale.", "Roast the vegetables in a hot oven for forty minutes.",
                "Let the sauce reduce before adding the cream.", "Slice the bread thinly and toast it in butter."],
    "weather": ["Heavy rain is expected across the coast tonight.", "Temperatures will drop below freezing by Friday.",
                "A strong wind warning is in place for the mountains.", "The fog should clear by late morning.",
                "It was the hottest July since records began.", "Snow showers will move in from the north.",
                "Thunderstorms may bring hail in the afternoon.", "Skies stay clear and dry for the weekend."],
    "finance": ["The central bank raised interest rates again.", "Shares fell sharply after the earnings report.",
                "She moved her savings into a low-cost index fund.", "Inflation slowed for the third month in a row.",
                "The company issued new bonds to pay its debt.", "Mortgage payments rose with the new rate.",
                "Investors sold tech stocks at the opening bell.", "The budget deficit narrowed this quarter."],
    "music": ["The orchestra tuned up before the symphony began.", "He plays bass guitar in a small jazz trio.",
              "Her new album mixes folk songs with electronic beats.", "The choir rehearsed the hymn in four parts.",
              "The drummer kept a steady tempo through the solo.", "Tickets for the concert sold out in an hour.",
              "She practises piano scales every evening.", "The band recorded the single in one take."],
    "travel": ["Our train to the coast leaves at seven.", "Pack light if you plan to hike between the villages.",
               "The ferry to the island runs twice a day.", "We booked a small hotel near the old harbour.",
               "Remember to check the visa rules before you fly.", "The night bus crosses the border at midnight.",
               "They rented bikes to tour the vineyards.", "The airport lounge was crowded with delayed passengers."],
    "health": ["Regular sleep helps the body recover from illness.", "The doctor advised rest and plenty of fluids.",
               "A short walk after meals can lower blood sugar.", "The clinic offers free flu vaccinations.",
               "Stretching before exercise reduces the risk of injury.", "He takes the tablets twice a day with food.",
               "The nurse checked her blood pressure.", "Eating more vegetables is good for the heart."],
    "technology": ["The new phone has a faster chip and a larger battery.", "Update the router firmware to fix the bug.",
                   "The app crashes when the cache is full.", "Engineers moved the service to a new cloud region.",
                   "The laptop screen flickers after the driver update.", "She wrote a script to back up the database.",
                   "The printer lost its wireless connection again.", "A software patch closed the security hole."],
}

TASKS = {
    "people_qa": {"instruction": "Given a question about a person, retrieve the passage that answers it"},
    "paraphrase": {"instruction": "Retrieve sentences that describe the same scene", "symmetric": True},
    "topic": {"instruction": "Classify the topic of the given sentence", "symmetric": True, "in_batch_negatives": False},
}


def people(rng: random.Random) -> tuple[list[dict], list[dict]]:
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    rows, corpus = [], []
    for name in names[:60]:
        city, job, hobby, year = rng.choice(CITIES), rng.choice(JOBS), rng.choice(HOBBIES), rng.randint(1950, 2001)
        first = name.split()[0]
        article = "an" if job[0] in "aeiou" else "a"
        passage = f"{name} is {article} {job} who lives in {city}. Born in {year}, {first} spends free time on {hobby}."
        corpus.append({"task": "people_qa", "text": passage})
        for question in (f"Where does {name} live?", f"What does {name} do for a living?",
                         f"Which hobby does {name} enjoy?", f"Which {job} born in {year} lives in {city}?"):
            rows.append({"task": "people_qa", "query": question, "positives": [passage]})
    return rows, corpus


def paraphrases() -> tuple[list[dict], list[dict]]:
    rows, corpus = [], []
    for animal in ANIMALS:
        for sentence, paraphrase in SCENES:
            rows.append({"task": "paraphrase", "query": sentence.format(a=animal), "positives": [paraphrase.format(a=animal)]})
            corpus.append({"task": "paraphrase", "text": paraphrase.format(a=animal)})
    return rows, corpus


def topics() -> tuple[list[dict], list[dict]]:
    rows = [{"task": "topic", "query": text, "positives": [topic]} for topic, texts in TOPICS.items() for text in texts]
    return rows, [{"task": "topic", "text": topic} for topic in TOPICS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "embed_mini"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    parts = [people(rng), paraphrases(), topics()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", [r for p in parts for r in p[0]]), ("corpus.jsonl", [c for p in parts for c in p[1]])):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out / "tasks.json").write_text(json.dumps(TASKS, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}: " + ", ".join(f"{len(p[0])} {p[0][0]['task']} queries" for p in parts))


if __name__ == "__main__":
    main()
