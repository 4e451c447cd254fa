"""Generate llmkit/assets/mteb_mini: six small local MTEB tasks (one per task type) in mteb's own data layout.

Written from templates over fixed word lists (no download; deterministic for a seed). The entities, scenes and
topic sentences are new, not the embed_mini training rows, but the domains match, so a model trained on
embed_mini should gain here:
- retrieval: questions about fictional people -> the passage describing them (people share cities and jobs);
- reranking: a question and five candidate passages (its own + four sharing the city or the job);
- sts: sentence pairs scored 0-5 (paraphrase 5, same scene other animal 3, same animal other scene 1, else 0);
- pair_classification: paraphrase (1) or the same animal in another scene (0);
- classification / clustering: sentences about one of eight topics (label = topic).
Each task also gets two fixed in-context examples (examples/<TaskName>.json) drawn from items outside its test set.
Files are .json, not .jsonl, so the tiny model's tokenizer (trained on the bundled .jsonl/.txt text) is unchanged.

Run: python scripts/make_mteb_mini.py [--out llmkit/assets/mteb_mini] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST = ["Aino", "Bela", "Cyrus", "Dalia", "Emil", "Fiona", "Goran", "Hana", "Ivo", "Jana", "Kofi", "Lena"]
LAST = ["Kowal", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi"]
CITIES = ["Porto", "Leipzig", "Tromso", "Valencia", "Krakow", "Ghent", "Bergen", "Turin"]
JOBS = ["baker", "nurse", "architect", "carpenter", "pilot", "librarian", "chemist", "violinist"]
HOBBIES = ["rock climbing", "chess", "sailing", "pottery", "birdwatching", "running", "gardening", "painting"]

ANIMALS = ["bear", "wolf", "duck", "mouse", "sheep", "pig"]
SCENES = [  # (sentence, paraphrase) with {a} for the animal
    ("The {a} slid down the frozen lake.", "On the icy lake, the {a} went sliding."),
    ("The {a} searched for food in the garden.", "In the yard the {a} was looking for something to eat."),
    ("The {a} fell asleep on the sunny porch.", "Lying on the bright veranda, the {a} dozed off."),
    ("The {a} jumped over the low stone wall.", "Over the short rock wall the {a} leapt."),
    ("The {a} was soaked by the sudden rain.", "A surprise shower left the {a} drenched."),
    ("The {a} pushed open the gate of the farm.", "The farm gate was nudged open by the {a}."),
    ("The {a} listened to the music from the house.", "Sounds of music from the home caught the {a}'s ear."),
    ("The {a} walked along the sandy beach.", "Along the shore the {a} strolled on the sand."),
    ("The {a} got lost in the dark forest.", "In the shadowy woods the {a} lost its way."),
    ("The {a} played with a ball in the yard.", "Out in the yard, the {a} had fun with a ball."),
]

TOPICS = {
    "sports": ["the penalty shootout", "the marathon runners", "the new goalkeeper", "the league table",
               "the swimming relay", "the boxing match", "the cycling team", "the ski jump final",
               "the basketball playoffs", "the rugby captain", "the tennis tournament", "the Olympic sprinter"],
    "cooking": ["the lemon tart recipe", "slow-roasted lamb", "homemade pasta dough", "the spicy curry",
                "the sourdough starter", "grilled vegetables", "the chocolate cake", "a pot of bean soup",
                "the pancake batter", "fresh herb pesto", "the apple pie crust", "the fish stew"],
    "weather": ["the coming heatwave", "the storm warning", "the morning frost", "heavy snowfall",
                "the rain forecast", "strong coastal winds", "the thick fog", "the hailstorm",
                "the dry spell", "the cold front", "the thunder in the hills", "record low temperatures"],
    "finance": ["the interest rate rise", "the stock market fall", "the pension fund", "the mortgage rates",
                "the tax return", "the quarterly earnings", "the bond yields", "the inflation figures",
                "the bank loan", "the currency exchange", "the company's debt", "the savings account"],
    "music": ["the jazz quartet", "the new album", "the piano recital", "the violin concerto",
              "the rock festival", "the choir's hymn", "the drum solo", "the opera premiere",
              "the guitar lesson", "the symphony orchestra", "the folk singer", "the band's world tour"],
    "travel": ["the night train", "the island ferry", "the passport queue", "the mountain hostel",
               "the city bus tour", "the flight delay", "the rental car", "the coastal road trip",
               "the hotel booking", "the border crossing", "the backpacking route", "the airport lounge"],
    "health": ["the flu vaccine", "the blood pressure check", "the knee surgery", "the sleep study",
               "the vitamin tablets", "the dental appointment", "the physiotherapy sessions", "the hospital ward",
               "the allergy test", "the heart scan", "the daily medication", "the fitness check-up"],
    "technology": ["the software update", "the new smartphone", "the broken router", "the cloud server",
                   "the laptop battery", "the database backup", "the security patch", "the printer driver",
                   "the video chat app", "the graphics card", "the password manager", "the wireless network"],
}
FRAMES = ["I read an article about {x} this morning.", "Everyone at lunch was talking about {x}.",
          "Her blog post covers {x} in detail.", "The radio show discussed {x} for an hour.",
          "He had a long question about {x}.", "My neighbour keeps complaining about {x}."]

INSTRUCTIONS = {
    "LlmkitMiniRetrieval": "Given a question about a person, retrieve the passage that answers it",
    "LlmkitMiniReranking": "Given a question about a person, rank the passages by how well they answer it",
    "LlmkitMiniSTS": "Retrieve semantically similar text",
    "LlmkitMiniPairClassification": "Retrieve sentences that describe the same scene",
    "LlmkitMiniClassification": "Classify the topic of the given sentence",
    "LlmkitMiniClustering": "Identify the topic of the given sentence",
}


def people(rng: random.Random) -> list[dict]:
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    out = []
    for i, name in enumerate(names[:44]):
        city, job, hobby, year = rng.choice(CITIES), rng.choice(JOBS), rng.choice(HOBBIES), rng.randint(1950, 2001)
        article = "an" if job[0] in "aeiou" else "a"
        text = f"{name} works as {article} {job} in {city}. {name.split()[0]} was born in {year} and loves {hobby}."
        out.append({"id": f"d{i}", "name": name, "city": city, "job": job, "hobby": hobby, "text": text})
    return out


def retrieval(persons: list[dict]) -> tuple[dict, list]:
    queries, relevant = [], {}
    for p in persons[4:]:
        for kind, question in (("city", f"In which city does {p['name']} work?"), ("job", f"What is {p['name']}'s job?")):
            qid = f"q{len(queries)}"
            queries.append({"id": qid, "text": question})
            relevant[qid] = {p["id"]: 1}
    corpus = [{"id": p["id"], "text": p["text"], "title": ""} for p in persons]
    examples = [{"query": f"What is {p['name']}'s job?", "response": p["text"]} for p in persons[:2]]
    return {"queries": queries, "corpus": corpus, "relevant_docs": relevant}, examples


def reranking(persons: list[dict], rng: random.Random) -> tuple[dict, list]:
    queries, relevant, ranked = [], {}, {}
    for p in persons[4:]:
        qid = f"q{len(queries)}"
        queries.append({"id": qid, "text": f"Which hobby does {p['name']} love?"})
        relevant[qid] = {p["id"]: 1}
        similar = [o["id"] for o in persons if o is not p and (o["city"] == p["city"] or o["job"] == p["job"])]
        others = [o["id"] for o in persons if o is not p and o["id"] not in similar]
        picks = rng.sample(similar, min(4, len(similar)))
        picks += rng.sample(others, 4 - len(picks))
        candidates = [p["id"], *picks]
        rng.shuffle(candidates)
        ranked[qid] = candidates
    corpus = [{"id": p["id"], "text": p["text"], "title": ""} for p in persons]
    examples = [{"query": f"Which hobby does {p['name']} love?", "response": p["text"]} for p in persons[2:4]]
    return {"queries": queries, "corpus": corpus, "relevant_docs": relevant, "top_ranked": ranked}, examples


def sts(rng: random.Random) -> tuple[dict, list]:
    rows = {"sentence1": [], "sentence2": [], "score": []}
    for a_i, animal in enumerate(ANIMALS):
        for s_i, (sentence, paraphrase) in enumerate(SCENES[:8]):
            other_animal = ANIMALS[(a_i + 1 + rng.randrange(len(ANIMALS) - 1)) % len(ANIMALS)]
            other_scene = SCENES[(s_i + 1 + rng.randrange(7)) % 8]
            pair, score = [(paraphrase.format(a=animal), 5.0), (paraphrase.format(a=other_animal), 3.0),
                           (other_scene[1].format(a=animal), 1.0), (other_scene[1].format(a=other_animal), 0.0)][(a_i + s_i) % 4]
            rows["sentence1"].append(sentence.format(a=animal))
            rows["sentence2"].append(pair)
            rows["score"].append(score)
    examples = [{"query": SCENES[8][0].format(a="bear"), "response": SCENES[8][1].format(a="bear")},
                {"query": SCENES[9][0].format(a="duck"), "response": SCENES[9][1].format(a="duck")}]
    return rows, examples


def pair_classification(rng: random.Random) -> tuple[dict, list]:
    rows = {"sentence1": [], "sentence2": [], "labels": []}
    for a_i, animal in enumerate(ANIMALS):
        for s_i, (sentence, paraphrase) in enumerate(SCENES[:8]):
            positive = (a_i + s_i) % 2 == 0
            other = SCENES[(s_i + 1 + rng.randrange(7)) % 8][1]
            rows["sentence1"].append(sentence.format(a=animal))
            rows["sentence2"].append(paraphrase.format(a=animal) if positive else other.format(a=animal))
            rows["labels"].append(int(positive))
    examples = [{"query": SCENES[8][0].format(a="wolf"), "response": SCENES[8][1].format(a="wolf")},
                {"query": SCENES[9][0].format(a="pig"), "response": SCENES[9][1].format(a="pig")}]
    return rows, examples


def topic_sentences(rng: random.Random) -> dict[str, list[str]]:
    """Per topic, each phrase in a frame; shuffled so that splits mix the frames."""
    out = {}
    for topic, phrases in TOPICS.items():
        texts = [FRAMES[(i + rng.randrange(len(FRAMES))) % len(FRAMES)].format(x=x) for i, x in enumerate(phrases)]
        rng.shuffle(texts)
        out[topic] = texts
    return out


def classification(sentences: dict[str, list[str]]) -> tuple[dict, list]:
    labels = sorted(sentences)
    split = lambda lo, hi: {"text": [t for k in labels for t in sentences[k][lo:hi]],  # noqa: E731
                            "label": [labels.index(k) for k in labels for _ in sentences[k][lo:hi]]}
    examples = [{"query": sentences[k][11], "response": k} for k in labels[:2]]
    return {"train": split(0, 5), "test": split(5, 9)}, examples


def clustering(sentences: dict[str, list[str]]) -> tuple[dict, list]:
    labels = sorted(sentences)
    rows = {"sentences": [t for k in labels for t in sentences[k][:9]],
            "labels": [k for k in labels for _ in sentences[k][:9]]}
    examples = [{"query": sentences[k][11], "response": k} for k in labels[2:4]]
    return rows, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "mteb_mini"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    persons = people(rng)
    sentences = topic_sentences(rng)
    tasks = {"LlmkitMiniRetrieval": retrieval(persons), "LlmkitMiniReranking": reranking(persons, rng),
             "LlmkitMiniSTS": sts(rng), "LlmkitMiniPairClassification": pair_classification(rng),
             "LlmkitMiniClassification": classification(sentences), "LlmkitMiniClustering": clustering(sentences)}
    out = Path(args.out)
    (out / "examples").mkdir(parents=True, exist_ok=True)
    for name, (data, examples) in tasks.items():
        (out / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "examples" / f"{name}.json").write_text(json.dumps(examples, indent=1, ensure_ascii=False) + "\n",
                                                       encoding="utf-8")
    (out / "instructions.json").write_text(json.dumps(INSTRUCTIONS, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}: " + ", ".join(tasks))


if __name__ == "__main__":
    main()
