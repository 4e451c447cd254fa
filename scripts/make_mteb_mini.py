"""Generate llmkit/assets/mteb_mini: six small local MTEB tasks (one per task type) in mteb's own data layout.

Written from templates over fixed word lists (no download; deterministic for a seed). The entities, scenes and
topic sentences are new, not the embed_mini training rows, but the domains match, so a model trained on
embed_mini should gain here:
- retrieval: 240 questions about 480 fictional people -> the passages that answer them. A question names the person
  (hard negatives: people sharing the first or last name, passages that mention the name in passing) or only facts
  (job, birth year, city, hobby; some paraphrased, so word overlap alone does not find the answer); every person
  sharing the asked facts is relevant;
- reranking: 160 such questions, each with 20 candidate passages: its answers, the closest wrong passages, random ones;
- sts: sentence pairs scored 0-5 (paraphrase 5, same scene other animal 3, same animal other scene 1, else 0);
- pair_classification: paraphrase (1), or the same animal in another scene or the same scene with another animal (0);
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

FIRST = ["Aino", "Bela", "Cyrus", "Dalia", "Emil", "Fiona", "Goran", "Hana", "Ivo", "Jana", "Kofi", "Lena", "Milan",
         "Nadia", "Oskar", "Paula", "Rafael", "Selma", "Tomas", "Ulla", "Viktor", "Wanda", "Yusuf", "Zora"]
LAST = ["Kowal", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi", "Santos", "Tanaka", "Urban",
        "Varga", "Weber", "Young", "Zielinski", "Horvat", "Jensen", "Larsen", "Marin", "Nilsen"]
CITIES = ["Porto", "Leipzig", "Tromso", "Valencia", "Krakow", "Ghent", "Bergen", "Turin", "Lyon", "Graz", "Aarhus",
          "Bilbao"]
JOBS = {  # job -> how a question may describe it without the word
    "baker": "bakes bread", "nurse": "cares for patients", "architect": "designs buildings",
    "carpenter": "builds wooden furniture", "pilot": "flies planes", "librarian": "looks after books",
    "chemist": "runs experiments in a lab", "violinist": "plays the violin", "plumber": "fixes pipes",
    "teacher": "teaches children", "journalist": "writes news stories", "gardener": "tends parks and plants"}
HOBBIES = {  # hobby -> a paraphrase
    "rock climbing": "scaling cliffs", "chess": "board games", "sailing": "boats", "pottery": "making ceramics",
    "birdwatching": "watching birds", "running": "jogging", "gardening": "growing flowers", "painting": "art with brushes",
    "cycling": "riding a bike", "photography": "taking pictures"}
PASSAGES = [  # four phrasings of one person's facts, so passages do not share one sentence shape
    "{name} works as {a} {job} in {city}. {first} was born in {year} and loves {hobby}.",
    "Born in {year}, {name} is {a} {job} living in {city} who spends weekends on {hobby}.",
    "{city} is home to {name}, {a} {job} born in {year}; {first}'s favourite pastime is {hobby}.",
    "{name}, {a} {job} from {city}, was born in {year}. In free time {first} enjoys {hobby}.",
]
# A clause naming another person, with none of that person's facts: a lexically close passage that does not answer.
MENTIONS = [" {first} shares a flat with {other}.", " {first} is an old school friend of {other}.",
            " Last year {first} went on holiday with {other}."]

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
    """Every FIRST x LAST name once, with random facts; half the passages also name another person (no facts)."""
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    out = []
    for i, name in enumerate(names):
        job = rng.choice(sorted(JOBS))
        facts = {"name": name, "first": name.split()[0], "city": rng.choice(CITIES), "job": job,
                 "a": "an" if job[0] in "aeiou" else "a", "hobby": rng.choice(sorted(HOBBIES)), "year": rng.randint(1950, 2001)}
        out.append({"id": f"d{i}", **facts, "text": PASSAGES[i % len(PASSAGES)].format(**facts), "mentions": None})
    others = list(range(len(out)))
    rng.shuffle(others)
    for p, o in zip(out, others):
        if p is not out[o] and rng.random() < 0.5:
            p["mentions"] = out[o]["name"]
            p["text"] += rng.choice(MENTIONS).format(first=p["first"], other=p["mentions"])
    return out


def question(p: dict, kind: int) -> tuple[str, tuple[str, ...]]:
    """One question about `p` and the facts that decide its answer (every person sharing them is relevant).

    Kinds 0-2 name the person (hard negatives: the same first or last name, passages that mention the name);
    3-5 name only facts, 4-5 paraphrased (hard negatives: passages sharing some of the facts).
    """
    job, hobby = JOBS[p["job"]], HOBBIES[p["hobby"]]
    return [(f"In which city does {p['name']} work?", ("name",)),
            (f"What is {p['name']}'s job?", ("name",)),
            (f"Which hobby does {p['name']} love?", ("name",)),
            (f"Which {p['job']} born in {p['year']} lives in {p['city']}?", ("job", "year", "city")),
            (f"Who {job} in {p['city']} and likes {hobby}?", ("job", "city", "hobby")),
            (f"Who {job} and enjoys {hobby}?", ("job", "hobby"))][kind]


def answers(persons: list[dict], p: dict, facts: tuple[str, ...]) -> list[str]:
    return [o["id"] for o in persons if all(o[f] == p[f] for f in facts)]


def corpus_of(persons: list[dict]) -> list[dict]:
    return [{"id": p["id"], "text": p["text"], "title": ""} for p in persons]


def retrieval(persons: list[dict]) -> tuple[dict, list]:
    """One question per person (kinds in turn) over the whole corpus."""
    queries, relevant = [], {}
    for i, p in enumerate(persons[4:244]):
        text, facts = question(p, i % 6)
        qid = f"q{len(queries)}"
        queries.append({"id": qid, "text": text})
        relevant[qid] = {d: 1 for d in answers(persons, p, facts)}
    examples = [{"query": question(p, k)[0], "response": p["text"]} for p, k in ((persons[0], 1), (persons[1], 3))]
    return {"queries": queries, "corpus": corpus_of(persons), "relevant_docs": relevant}, examples


def reranking(persons: list[dict], rng: random.Random, candidates: int = 20) -> tuple[dict, list]:
    """One question per person and `candidates` passages to rank: its answers, then the closest wrong passages
    (the person's name mentioned, the same first or last name, shared facts), then random ones."""
    queries, relevant, ranked = [], {}, {}
    for i, p in enumerate(persons[244:404]):
        kind = (2, 0, 4, 1, 3, 5)[i % 6]
        text, facts = question(p, kind)
        qid = f"q{len(queries)}"
        queries.append({"id": qid, "text": text})
        good = answers(persons, p, facts)
        relevant[qid] = {d: 1 for d in good}
        if "name" in facts:
            close = [o for o in persons if o["mentions"] == p["name"] or o["first"] == p["first"] or o["name"].split()[1] == p["name"].split()[1]]
        else:
            close = [o for o in persons if sum(o[f] == p[f] for f in facts) == len(facts) - 1]
        close = [o["id"] for o in close if o["id"] not in good]
        rng.shuffle(close)
        picks = close[:candidates - len(good)]
        rest = [o["id"] for o in persons if o["id"] not in good and o["id"] not in picks]
        picks += rng.sample(rest, candidates - len(good) - len(picks))
        ranked[qid] = [*good, *picks]
        rng.shuffle(ranked[qid])
    examples = [{"query": question(p, k)[0], "response": p["text"]} for p, k in ((persons[2], 2), (persons[3], 4))]
    return {"queries": queries, "corpus": corpus_of(persons), "relevant_docs": relevant, "top_ranked": ranked}, examples


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
            other_scene = SCENES[(s_i + 1 + rng.randrange(7)) % 8][1].format(a=animal)
            # every other negative is lexically close: the same scene's paraphrase, but another animal
            other_animal = paraphrase.format(a=ANIMALS[(a_i + 1 + rng.randrange(len(ANIMALS) - 1)) % len(ANIMALS)])
            rows["sentence1"].append(sentence.format(a=animal))
            rows["sentence2"].append(paraphrase.format(a=animal) if positive else
                                     other_animal if (a_i + s_i) % 4 == 1 else other_scene)
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
    rng = lambda part: random.Random(f"{args.seed}:{part}")  # noqa: E731  one stream per part: each is reproducible alone
    persons = people(rng("people"))
    sentences = topic_sentences(rng("topics"))
    tasks = {"LlmkitMiniRetrieval": retrieval(persons), "LlmkitMiniReranking": reranking(persons, rng("reranking")),
             "LlmkitMiniSTS": sts(rng("sts")), "LlmkitMiniPairClassification": pair_classification(rng("pairs")),
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
