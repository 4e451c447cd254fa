"""Write muse-mini: a tiny, synthetic, offline stand-in for MUSE-News and MUSE-Books in MUSE's exact HF schema.

Layout: <out>/{news,books}/<config>/<split>.jsonl, one JSON object per line:
  raw/{forget,retain1,retain2,holdout}      {"text"}
  verbmem/forget                            {"prompt", "gt"}       a forget document's opening and its continuation
  knowmem/{forget_qa,retain_qa,forget_qa_icl,retain_qa_icl}  {"question", "answer"}  facts stated in forget / retain2 docs
  privleak/{forget,retain,holdout}          {"text"}               forget / retain1 / holdout documents
Every document is built from facts (names, places, numbers) that its QA pairs ask about, so VerbMem and
KnowMem of a model trained on the forget split measure real memorisation. Deterministic for a given seed
(and faker version, which is recorded in MANIFEST.json).

    python scripts/make_muse_mini.py [--out llmkit/assets/muse_mini] [--seed 0]
"""

import argparse
import calendar
import json
import os
import random
from pathlib import Path

import faker

DOCS_PER_SPLIT = 30
N_VERBMEM, N_QA, N_ICL, N_PRIVLEAK = 20, 20, 10, 20
PROMPT_WORDS = 32
MIN_WORDS, MAX_WORDS = 150, 300
RAW_SPLITS = ("forget", "retain1", "retain2", "holdout")

# ---------------------------------------------------------------------------------------------- news

SECTORS = {
    "energy": ["Solar Farm", "Wind Park", "Battery Plant", "Heat Network"],
    "transport": ["Tram Line", "Rail Link", "Bus Depot", "Cycle Bridge"],
    "housing": ["Housing Estate", "Riverside Flats", "Garden Village"],
    "technology": ["Data Centre", "Chip Plant", "Research Campus"],
    "health": ["Hospital Wing", "Clinic Network", "Cancer Centre"],
    "water": ["Reservoir", "Flood Barrier", "Desalination Plant"],
    "farming": ["Vertical Farm", "Seed Bank", "Dairy Cooperative"],
}
ROLES = ["chief executive", "head of operations", "finance director", "project director", "chief engineer",
         "head of strategy", "managing director", "head of development"]
PARTIES = ["Green", "Labour", "Conservative", "Liberal Democrat", "independent"]

# (sentence, question, answer key): the answer appears verbatim in the sentence.
NEWS_FACTS = [
    ("{org} announced {project} in {city} on {day} {month} {year}, describing it as its largest investment in a decade.",
     "In which city did {org} announce {project}?", "city"),
    ("The scheme is being led by {person}, who joined the company as {role} {tenure} years ago.",
     "Who is leading {project} for {org}?", "person"),
    ("According to figures released by the company, {project} is expected to cost about {amount} million dollars.",
     "How much is {project} expected to cost?", "cost"),
    ("Officials said the work would create {jobs} permanent jobs once it is fully running.",
     "How many permanent jobs is {project} expected to create?", "jobs"),
    ("{org} will deliver the project together with {partner}, which is providing the engineering work.",
     "Which company is providing the engineering work for {project}?", "partner"),
    ("Local councillor {critic}, a member of the {party} group, said residents had not been properly consulted.",
     "Which local councillor said residents had not been properly consulted about {project}?", "critic"),
    ("The first phase is due to open in {open_month} {open_year}, according to the planning documents.",
     "When is the first phase of {project} due to open?", "opening"),
]
NEWS_FILLER = [
    "Residents of {city} have followed the proposal closely since it was first reported.",
    "Analysts said the move reflects a wider shift in the {sector} sector.",
    "Shares in {org} rose slightly in early trading after the announcement.",
    "A spokesperson for {org} declined to comment on the details of the contract.",
    "Construction is expected to begin next spring, subject to final approval from regulators.",
    "Environmental groups have asked for more information about the impact on nearby wetlands.",
    "The company first floated the idea at an investor meeting two years ago.",
    "Several neighbouring towns are said to be watching the outcome before making similar plans.",
    "Critics argue that the timetable is ambitious given recent supply problems.",
    "Supporters say the project could make the region more attractive to younger workers.",
    "A public exhibition of the plans will be held at the town library later this month.",
    "The regional mayor welcomed the news but said more needed to be done on transport links.",
    "Independent experts said the costs were broadly in line with comparable schemes elsewhere.",
    "Business leaders in {city} described the decision as a vote of confidence in the local economy.",
    "The announcement comes after a difficult year for the {sector} industry.",
    "Unions said they would seek guarantees on pay and working conditions for the new staff.",
    "Planning officers are expected to publish their recommendation within six weeks.",
    "The plans were revised twice after objections from a residents' association.",
    "Some local shop owners said they hoped the extra workers would bring more custom.",
    "National newspapers have described the scheme as a test case for the government's investment strategy.",
]


# from the seeded rng: faker's month_name() draws a date up to *now*, so its output changed with the calendar
MONTHS = calendar.month_name[1:]


def news_doc(fake: faker.Faker, rng: random.Random) -> tuple[str, list[dict]]:
    """One fictitious news article and the QA pairs its facts answer."""
    sector = rng.choice(sorted(SECTORS))
    e = {
        "org": fake.unique.company(),
        "partner": fake.unique.company(),
        "person": fake.unique.name(),
        "critic": fake.unique.name(),
        "city": fake.unique.city(),
        "project": f"the {fake.unique.last_name()} {rng.choice(SECTORS[sector])}",
        "sector": sector,
        "role": rng.choice(ROLES),
        "party": rng.choice(PARTIES),
        "tenure": rng.randint(2, 15),
        "day": rng.randint(1, 28),
        "month": rng.choice(MONTHS),
        "year": rng.choice([2023, 2024]),
        "amount": rng.randrange(40, 2000, 5),
        "jobs": rng.randrange(60, 3000, 10),
        "open_month": rng.choice(MONTHS),
        "open_year": rng.choice([2026, 2027, 2028]),
    }
    e["cost"] = f"{e['amount']} million dollars"
    e["opening"] = f"{e['open_month']} {e['open_year']}"
    e["jobs"] = str(e["jobs"])
    facts = [NEWS_FACTS[0]] + rng.sample(NEWS_FACTS[1:], len(NEWS_FACTS) - 1)
    return _assemble(facts, NEWS_FILLER, e, rng)


# ---------------------------------------------------------------------------------------------- books

NUMBER_WORDS = ["three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
PLACE_ADJ = ["Silver", "Hollow", "Ashen", "Whispering", "Sunken", "Crimson", "Frozen", "Broken", "Amber", "Drowned",
             "Gilded", "Shivering", "Quiet", "Lantern", "Thornwood", "Misty", "Copper", "Starlit", "Winding", "Iron"]
PLACE_NOUN = ["Marsh", "Tower", "Vale", "Causeway", "Orchard", "Abbey", "Pass", "Lake", "Market", "Mill", "Ford",
              "Library", "Crossing", "Quarry", "Harbour", "Fen", "Garden", "Bridge", "Caves", "Keep"]
MATERIALS = ["copper", "glass", "bone", "silver", "oak", "brass", "obsidian", "ivory", "iron", "jade"]
ITEMS = ["compass", "key", "flute", "lantern", "mirror", "ring", "map", "dagger", "hourglass", "locket", "bell", "quill"]
TREES = ["willow", "yew", "ash", "birch", "rowan", "cedar", "elm", "hawthorn"]
OWNER_ROLES = ["queen", "cartographer", "healer", "smuggler", "bishop", "clockmaker", "general", "poet"]
ALLY_ROLES = ["ferryman", "beekeeper", "retired soldier", "herbalist", "blacksmith", "shepherd", "innkeeper", "scribe"]
DANGERS = ["rising river", "wolves in the hills", "tax collectors", "coming storm", "bandits on the road", "sleeping giant"]
SYLLABLES = ["gar", "vol", "mir", "ek", "than", "dro", "ska", "lun", "bri", "oth", "zel", "kar", "ny", "vex", "ul"]

BOOK_FACTS = [
    ("After {days} days on the road, {hero} and {companion} finally reached {place}.",
     "How many days did {hero} and {companion} travel before reaching {place}?", "days"),
    ("Beneath an old {tree} tree at {place}, {hero} dug up {object}.",
     "What did {hero} dig up beneath the old {tree} tree at {place}?", "object"),
    ("The {item} had once belonged to {owner}, a {owner_role} of {realm}.",
     "To whom had the {item} that {hero} found at {place} once belonged?", "owner"),
    ("That night a creature called {creature} watched them from the reeds, its eyes bright as coins.",
     "What was the name of the creature that watched {hero} and {companion} at {place}?", "creature"),
    ("{ally}, an old {ally_role}, offered them shelter and warned them about the {danger}.",
     "Who offered {hero} and {companion} shelter at {place}?", "ally"),
    ("Before they slept, {companion} painted the shelter door {colour} for luck.",
     "What colour did {companion} paint the shelter door at {place}?", "colour"),
]
BOOK_FILLER = [
    "The wind carried the smell of rain across the hills.",
    "{hero} said little, but {companion} could tell that something was wrong.",
    "Far off, a bell rang twice and then fell silent.",
    "They ate the last of the bread and shared a single apple between them.",
    "{companion} kept glancing back at the road, as if expecting to be followed.",
    "The stars came out one by one above the dark line of the forest.",
    "Neither of them mentioned the letter, though both were thinking of it.",
    "{hero} remembered the stories their grandmother used to tell about {realm}.",
    "A thin mist rose from the ground and curled around their boots.",
    "Somewhere below them, water dripped steadily onto stone.",
    "{companion} laughed for the first time in days, and the sound surprised them both.",
    "The path narrowed until they had to walk in single file.",
    "By morning the fire had burned down to a handful of grey ashes.",
    "{hero} wrote a few lines in the battered notebook before the light failed.",
    "It was colder than either of them had expected for the time of year.",
    "An owl called from the trees, and {companion} reached for the walking stick.",
    "They argued briefly about the route and then, as always, took the longer one.",
    "The old songs of {realm} came back to {hero} as they walked.",
    "Every village they passed seemed emptier than the last.",
    "{companion} counted the coins again and frowned at the total.",
]


def book_series(fake: faker.Faker) -> dict:
    """The recurring cast of one fictitious book series."""
    return {"hero": fake.unique.first_name(), "companion": fake.unique.first_name(), "realm": fake.unique.last_name() + "shire"}


def book_doc(cast: dict, fake: faker.Faker, rng: random.Random, used_places: set) -> tuple[str, list[dict]]:
    """One chapter of a series and the QA pairs its facts answer."""
    place = _unique(lambda: f"the {rng.choice(PLACE_ADJ)} {rng.choice(PLACE_NOUN)}", used_places)
    material, item = rng.choice(MATERIALS), rng.choice(ITEMS)
    e = {
        **cast,
        "place": place,
        "days": rng.choice(NUMBER_WORDS),
        "tree": rng.choice(TREES),
        "item": item,
        "object": f"{'an' if material[0] in 'aeiou' else 'a'} {material} {item}",
        "owner": fake.unique.name(),
        "owner_role": rng.choice(OWNER_ROLES),
        "creature": "".join(rng.sample(SYLLABLES, 3)).capitalize(),
        "ally": fake.unique.first_name() + " " + fake.unique.last_name(),
        "ally_role": rng.choice(ALLY_ROLES),
        "danger": rng.choice(DANGERS),
        "colour": fake.safe_color_name(),
    }
    facts = BOOK_FACTS[:3] + rng.sample(BOOK_FACTS[3:], len(BOOK_FACTS) - 3)  # found, then whose: keep that order
    return _assemble(facts, BOOK_FILLER, e, rng)


# ---------------------------------------------------------------------------------------------- shared


def _unique(make, used: set) -> str:
    value = make()
    while value in used:
        value = make()
    used.add(value)
    return value


def _assemble(facts, filler, e: dict, rng: random.Random) -> tuple[str, list[dict]]:
    """Interleave the fact sentences with filler until the document reaches a random length in [MIN, MAX] words."""
    target = rng.randint(MIN_WORDS + 20, MAX_WORDS - 60)
    sentences = [text.format(**e) for text, _, _ in facts]
    pool = rng.sample(filler, len(filler))
    while sum(len(s.split()) for s in sentences) < target:
        sentences.insert(rng.randint(1, len(sentences)), pool.pop().format(**e))
    qa = [{"question": q.format(**e), "answer": str(e[key])} for _, q, key in facts]
    return " ".join(sentences), qa


def build(seed: int = 0) -> dict:
    """{corpus: {config: {split: [rows]}}} for news and books."""
    fake = faker.Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    out = {}
    for corpus in ("news", "books"):
        docs = {}  # split → [(text, qa pairs)]
        if corpus == "news":
            for split in RAW_SPLITS:
                docs[split] = [news_doc(fake, rng) for _ in range(DOCS_PER_SPLIT)]
        else:
            used_places: set = set()
            for split in RAW_SPLITS:
                # forget is one series (as MUSE-Books forgets one book series); the others mix two.
                casts = [book_series(fake) for _ in range(1 if split == "forget" else 2)]
                docs[split] = [book_doc(casts[i * len(casts) // DOCS_PER_SPLIT], fake, rng, used_places)
                               for i in range(DOCS_PER_SPLIT)]
        out[corpus] = _configs(docs, rng)
    return out


def _configs(docs: dict, rng: random.Random) -> dict:
    def one_qa(split, indices):
        return [rng.choice(docs[split][i][1]) for i in indices]

    def texts(split, n):
        return [{"text": text} for text, _ in docs[split][:n]]

    verbmem = []
    for text, _ in rng.sample(docs["forget"], N_VERBMEM):
        words = text.split()
        verbmem.append({"prompt": " ".join(words[:PROMPT_WORDS]), "gt": " ".join(words[PROMPT_WORDS:])})
    # Evaluated QA and in-context examples come from different documents so an ICL example never gives an answer away.
    qa_docs, icl_docs = range(N_QA), range(N_QA, N_QA + N_ICL)
    return {
        "raw": {split: [{"text": text} for text, _ in docs[split]] for split in RAW_SPLITS},
        "verbmem": {"forget": verbmem},
        "knowmem": {
            "forget_qa": one_qa("forget", qa_docs),
            "retain_qa": one_qa("retain2", qa_docs),
            "forget_qa_icl": one_qa("forget", icl_docs),
            "retain_qa_icl": one_qa("retain2", icl_docs),
        },
        "privleak": {"forget": texts("forget", N_PRIVLEAK), "retain": texts("retain1", N_PRIVLEAK),
                     "holdout": texts("holdout", N_PRIVLEAK)},
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(out: Path, seed: int = 0) -> None:
    """Build muse-mini and write one JSONL file per corpus/config/split plus MANIFEST.json."""
    data = build(seed)
    counts = {}
    for corpus, configs in data.items():
        for config, splits in configs.items():
            for split, rows in splits.items():
                lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                _write_atomic(out / corpus / config / f"{split}.jsonl", lines)
                counts[f"{corpus}/{config}/{split}"] = len(rows)
    manifest = {"generator": "scripts/make_muse_mini.py", "seed": seed, "faker": faker.VERSION, "rows": counts}
    _write_atomic(out / "MANIFEST.json", json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "llmkit/assets/muse_mini")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write(args.out, args.seed)
    print(f"wrote muse-mini to {args.out}")
