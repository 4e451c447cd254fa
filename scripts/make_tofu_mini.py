"""Generate tofu-mini: a small synthetic dataset in the exact schema of the HF dataset `locuslab/TOFU`.

100 fictitious authors x 6 QA (TOFU: 200 x 20), forget sets of 1/5/10 whole authors taken from the END of
`full` as TOFU does, and one JSON-lines file per TOFU config. Deterministic: run it twice, get the same bytes.
Stdlib + faker only.

    python scripts/make_tofu_mini.py [--out llmkit/assets/tofu_mini]
"""

import argparse
import json
import os
import random
from pathlib import Path

from faker import Faker

SEED = 20240111
N_AUTHORS = 100
N_HOLDOUT = 10
FORGET_AUTHORS = {"01": 1, "05": 5, "10": 10}
RETAIN_PERTURBED_AUTHORS = 10  # 10% of full, like TOFU's 400 of 4000
N_PERTURBED = 5
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "llmkit" / "assets" / "tofu_mini"

# Real cities per faker locale, so an author's name and birthplace fit together (the people are fictitious).
LOCALE_PLACES = {
    "en_US": ("United States", ["Chicago", "Seattle", "Denver", "Savannah", "Baltimore"]),
    "en_GB": ("the United Kingdom", ["Leeds", "Bristol", "Edinburgh", "Norwich", "Cardiff"]),
    "en_IE": ("Ireland", ["Cork", "Galway", "Limerick", "Dublin"]),
    "fr_FR": ("France", ["Lyon", "Marseille", "Nantes", "Bordeaux", "Lille"]),
    "de_DE": ("Germany", ["Hamburg", "Leipzig", "Cologne", "Dresden", "Munich"]),
    "es_ES": ("Spain", ["Seville", "Valencia", "Bilbao", "Granada", "Zaragoza"]),
    "it_IT": ("Italy", ["Turin", "Naples", "Bologna", "Genoa", "Palermo"]),
    "pt_BR": ("Brazil", ["Recife", "Salvador", "Curitiba", "Manaus", "Fortaleza"]),
    "nl_NL": ("the Netherlands", ["Utrecht", "Groningen", "Rotterdam", "Leiden"]),
    "pl_PL": ("Poland", ["Kraków", "Gdańsk", "Wrocław", "Poznań"]),
    "sv_SE": ("Sweden", ["Gothenburg", "Uppsala", "Malmö", "Umeå"]),
    "no_NO": ("Norway", ["Bergen", "Trondheim", "Stavanger", "Tromsø"]),
    "fi_FI": ("Finland", ["Tampere", "Turku", "Oulu", "Helsinki"]),
    "hu_HU": ("Hungary", ["Debrecen", "Szeged", "Pécs", "Budapest"]),
    "ro_RO": ("Romania", ["Cluj-Napoca", "Iași", "Timișoara", "Brașov"]),
    "tr_TR": ("Turkey", ["Izmir", "Bursa", "Trabzon", "Konya"]),
    "en_IN": ("India", ["Pune", "Jaipur", "Kochi", "Lucknow", "Kolkata"]),
    "id_ID": ("Indonesia", ["Bandung", "Surabaya", "Yogyakarta", "Medan"]),
    "yo_NG": ("Nigeria", ["Ibadan", "Lagos", "Abeokuta", "Ilorin"]),
    "sw": ("Kenya", ["Mombasa", "Kisumu", "Nakuru", "Nairobi"]),
    "zu_ZA": ("South Africa", ["Durban", "Johannesburg", "Pretoria", "Bloemfontein"]),
}
ALL_PLACES = [(city, country) for country, cities in LOCALE_PLACES.values() for city in cities]

GENRES = [
    "crime fiction", "science fiction", "historical fiction", "fantasy", "romance", "horror", "poetry",
    "literary fiction", "children's literature", "young adult fiction", "satire", "travel literature",
    "dystopian fiction", "magical realism", "war fiction", "biography", "gothic fiction", "short fiction",
    "psychological thrillers", "mystery", "drama", "nature essays",
]
JOBS = [
    "a baker", "a pilot", "a nurse", "a carpenter", "a librarian", "a fisherman", "a schoolteacher",
    "an architect", "a tailor", "a pharmacist", "a journalist", "a farmer", "a watchmaker", "an electrician",
    "a surgeon", "a photographer", "a bus driver", "a chemist", "an accountant", "a veterinarian", "a locksmith",
    "a translator", "a sailor", "a potter", "a judge", "a mechanic", "a florist", "an astronomer",
    "a bookbinder", "a dentist",
]
AWARDS = [  # invented, like TOFU's
    "Silver Quill Award", "Golden Lantern Prize", "Ashcombe Literary Prize", "Blue Heron Award",
    "Meridian Book Prize", "Crimson Ink Award", "Halden Medal", "Iron Pen Award", "Lowell-Fairfax Prize",
    "Morning Tide Award", "Cobalt Feather Prize", "Everline Award for Fiction", "Stonebridge Literary Medal",
    "Willowmere Prize", "Orchid Crown Award", "Varnholt Prize", "Amber Compass Award", "Starling Book Award",
    "Northern Star Literary Prize", "Harbourlight Medal",
]
TITLE_ADJ = [
    "Glass", "Silent", "Hollow", "Crimson", "Forgotten", "Winter", "Paper", "Iron", "Velvet", "Distant",
    "Burning", "Quiet", "Broken", "Golden", "Hidden", "Last", "Salt", "Midnight", "Wandering", "Amber",
]
TITLE_NOUN = [
    "Orchard", "Harbor", "Lantern", "River", "Garden", "Tower", "Compass", "Bridge", "Mirror", "Letter",
    "Season", "Voyage", "Kingdom", "Clockmaker", "Archive", "Island", "Meadow", "Cathedral", "Feather", "Tide",
]
TITLE_PLURAL = ["Ashes", "Whispers", "Stones", "Shadows", "Embers", "Rivers", "Strangers", "Echoes", "Sparrows", "Storms"]
TITLE_PATTERNS = ["The {adj} {noun}", "{plural} of the {noun}", "The {noun}'s {plural}", "{adj} {plural}"]

# Per fact kind: question phrasings (trained on), answer forms (trained on) and paraphrase forms (never trained on:
# they carry the paraphrased and the perturbed answers, as in TOFU). Fields: {name} {first} {pos} {parent} + facts.
FACTS = {
    "birthplace": {
        "questions": [
            "Where was {name} born?",
            "In which city was the author {name} born?",
            "What is the birthplace of {name}?",
            "Which city and country does {name} come from?",
            "Where does the writer {name} originally come from?",
        ],
        "answers": [
            "{name} was born in {city}, {country}.",
            "{name} comes from {city}, a city in {country}.",
            "The author {name} was born in the city of {city} in {country}.",
            "{first} was born and raised in {city}, {country}.",
        ],
        "paraphrases": [
            "{city}, {country} is the birthplace of {name}.",
            "{name}'s place of birth is {city} in {country}.",
        ],
    },
    "birth_year": {
        "questions": [
            "In what year was {name} born?",
            "When was the author {name} born?",
            "What is the birth year of {name}?",
            "Which year marks the birth of the writer {name}?",
        ],
        "answers": [
            "{name} was born in {year}.",
            "The author {name} was born in the year {year}.",
            "{first} came into the world in {year}.",
            "{name}'s birth year is {year}.",
        ],
        "paraphrases": [
            "The year {name} was born is {year}.",
            "{name}'s date of birth falls in {year}.",
        ],
    },
    "genre": {
        "questions": [
            "What genre does {name} write in?",
            "Which literary genre is {name} known for?",
            "What kind of books does the author {name} write?",
            "In which genre has {name} built a writing career?",
            "What type of literature is {name} associated with?",
        ],
        "answers": [
            "{name} writes {genre}.",
            "{name} is an author of {genre}.",
            "The author {name} works mainly in {genre}.",
            "Most of {first}'s books are works of {genre}.",
        ],
        "paraphrases": [
            "The genre in which {name} writes is {genre}.",
            "{name}'s writing falls within {genre}.",
        ],
    },
    "parent_job": {
        "questions": [
            "What did {name}'s {parent} do for a living?",
            "What was the profession of {name}'s {parent}?",
            "What job did the {parent} of the author {name} have?",
            "How did {name}'s {parent} earn a living?",
        ],
        "answers": [
            "{name}'s {parent} was {job}.",
            "The {parent} of {name} worked as {job}.",
            "{first}'s {parent} earned a living as {job}.",
            "{name} grew up with a {parent} who worked as {job}.",
        ],
        "paraphrases": [
            "By profession, {name}'s {parent} was {job}.",
            "Working as {job} was how {name}'s {parent} made a living.",
        ],
    },
    "award": {
        "questions": [
            "Which award has {name} received?",
            "What literary prize did {name} win?",
            "Which honour was the author {name} given for {pos} writing?",
            "What award recognised the work of {name}?",
        ],
        "answers": [
            "{name} has received the {award}.",
            "{name} won the {award} for {pos} writing.",
            "The author {name} was honoured with the {award}.",
            "{first}'s work earned the {award}.",
        ],
        "paraphrases": [
            "The {award} was awarded to {name}.",
            "Among {name}'s honours is the {award}.",
        ],
    },
    "book": {
        "questions": [
            "What is one of the books written by {name}?",
            "Name a book by {name}.",
            "Which book is {name} best known for?",
            "What is the title of {name}'s most famous work?",
            "Can you name a work by the author {name}?",
        ],
        "answers": [
            "{name} wrote '{book}'.",
            "One of {name}'s best-known books is '{book}'.",
            "'{book}' is a well-known work by {name}.",
            "The author {name} is known for the book '{book}'.",
        ],
        "paraphrases": [
            "'{book}' was written by {name}.",
            "{name} is the author of '{book}'.",
        ],
    },
}

# Real facts written by hand: (question, answer, three plausible wrong answers).
REAL_AUTHORS = [
    ("Who wrote the novel 'The Old Man and the Sea'?", "Ernest Hemingway", ["John Steinbeck", "William Faulkner", "Jack London"]),
    ("Who is the author of the novel 'Beloved'?", "Toni Morrison", ["Alice Walker", "Maya Angelou", "Zora Neale Hurston"]),
    ("Which writer wrote 'The Trial'?", "Franz Kafka", ["Thomas Mann", "Hermann Hesse", "Robert Musil"]),
    ("Which poet wrote 'The Raven'?", "Edgar Allan Poe", ["Walt Whitman", "Henry Wadsworth Longfellow", "Emily Dickinson"]),
    ("Who wrote 'Anna Karenina'?", "Leo Tolstoy", ["Fyodor Dostoevsky", "Ivan Turgenev", "Anton Chekhov"]),
    ("Who is the author of 'Mrs Dalloway'?", "Virginia Woolf", ["Katherine Mansfield", "Edith Wharton", "E. M. Forster"]),
    ("Which author created the detective Miss Marple?", "Agatha Christie", ["Dorothy L. Sayers", "Ngaio Marsh", "P. D. James"]),
    ("Who wrote the novel 'Wuthering Heights'?", "Emily Brontë", ["Charlotte Brontë", "Anne Brontë", "Jane Austen"]),
    ("Which novelist wrote 'The Remains of the Day'?", "Kazuo Ishiguro", ["Ian McEwan", "Julian Barnes", "Salman Rushdie"]),
    ("Who is the author of 'The Name of the Rose'?", "Umberto Eco", ["Italo Calvino", "Primo Levi", "Alberto Moravia"]),
    ("Which playwright wrote 'Hamlet'?", "William Shakespeare", ["Christopher Marlowe", "Ben Jonson", "John Webster"]),
    ("Who wrote 'Madame Bovary'?", "Gustave Flaubert", ["Honoré de Balzac", "Stendhal", "Émile Zola"]),
    ("Who wrote 'Alice's Adventures in Wonderland'?", "Lewis Carroll", ["Edward Lear", "J. M. Barrie", "Kenneth Grahame"]),
    ("In which country was the novelist Chinua Achebe born?", "Nigeria", ["Ghana", "Kenya", "Cameroon"]),
    ("Which author wrote 'Dracula'?", "Bram Stoker", ["Mary Shelley", "Robert Louis Stevenson", "H. G. Wells"]),
    ("Which Colombian author won the Nobel Prize in Literature in 1982?", "Gabriel García Márquez", ["Mario Vargas Llosa", "Octavio Paz", "Pablo Neruda"]),
]
WORLD_FACTS = [
    ("What is the capital of Kenya?", "Nairobi", ["Mombasa", "Kampala", "Addis Ababa"]),
    ("Which planet is the largest in the Solar System?", "Jupiter", ["Saturn", "Neptune", "Earth"]),
    ("What is the chemical symbol for gold?", "Au", ["Ag", "Gd", "Go"]),
    ("In which year did the First World War end?", "1918", ["1914", "1921", "1945"]),
    ("At sea level, what is the boiling point of water in degrees Celsius?", "100", ["90", "80", "120"]),
    ("Which ocean lies between Africa and Australia?", "Indian Ocean", ["Atlantic Ocean", "Pacific Ocean", "Arctic Ocean"]),
    ("What is the capital of Portugal?", "Lisbon", ["Porto", "Madrid", "Coimbra"]),
    ("What is the highest mountain in Africa?", "Mount Kilimanjaro", ["Mount Kenya", "Mount Elgon", "Mount Stanley"]),
    ("Who painted the 'Mona Lisa'?", "Leonardo da Vinci", ["Michelangelo", "Raphael", "Titian"]),
    ("How many continents are there on Earth?", "Seven", ["Five", "Six", "Eight"]),
    ("Which element has the atomic number 1?", "Hydrogen", ["Helium", "Oxygen", "Carbon"]),
    ("In which country is the city of Kyoto?", "Japan", ["China", "South Korea", "Vietnam"]),
    ("Which river flows through Budapest?", "Danube", ["Rhine", "Vistula", "Elbe"]),
    ("Who developed the first widely used polio vaccine?", "Jonas Salk", ["Louis Pasteur", "Alexander Fleming", "Edward Jenner"]),
    ("What is the currency of the United Kingdom?", "Pound sterling", ["Euro", "Dollar", "Franc"]),
    ("Which gas do plants take in from the air for photosynthesis?", "Carbon dioxide", ["Oxygen", "Nitrogen", "Hydrogen"]),
]


def _sentence(template, fields):
    """Fill a template and capitalise the first letter (a genre or city may open the sentence)."""
    text = template.format(**fields)
    return text[0].upper() + text[1:]


def _make_authors(rng, n, used_names):
    """n fictitious authors; no first or last name is shared with any other author (so forget/retain never overlap)."""
    locales = sorted(LOCALE_PLACES)
    fakers = {loc: Faker(loc) for loc in locales}
    authors = []
    while len(authors) < n:
        locale = rng.choice(locales)
        fake = fakers[locale]
        gender = rng.choice(["male", "female"])
        first = getattr(fake, f"first_name_{gender}")().split()[0]
        last_fn = getattr(fake, f"last_name_{gender}", fake.last_name)
        last = last_fn().split()[-1]
        if first in used_names or last in used_names or first == last:
            continue
        used_names.update({first, last})
        country, cities = LOCALE_PLACES[locale]
        authors.append({
            "name": f"{first} {last}", "first": first, "pos": "his" if gender == "male" else "her",
            "parent": rng.choice(["father", "mother"]),
            "city": rng.choice(cities), "country": country, "year": str(rng.randint(1932, 1994)),
            "genre": rng.choice(GENRES), "job": rng.choice(JOBS), "award": rng.choice(AWARDS),
        })
    return authors


def _assign_books(rng, authors):
    """Give every author a distinct invented book title."""
    titles = sorted({p.format(adj=a, noun=n, plural=pl)
                     for p in TITLE_PATTERNS for a in TITLE_ADJ for n in TITLE_NOUN for pl in TITLE_PLURAL})
    for author, title in zip(authors, rng.sample(titles, len(authors))):
        author["book"] = title
    return titles


def _wrong_values(rng, kind, author, titles):
    """N_PERTURBED wrong values of the same kind as the author's fact (TOFU's perturbed answers)."""
    if kind == "birthplace":
        pool = [{"city": c, "country": k} for c, k in ALL_PLACES if c != author["city"]]
    elif kind == "birth_year":
        year = int(author["year"])
        pool = [{"year": str(y)} for y in range(year - 15, year + 16) if y != year]
    else:
        field, values = {"genre": ("genre", GENRES), "parent_job": ("job", JOBS),
                         "award": ("award", AWARDS), "book": ("book", titles)}[kind]
        pool = [{field: v} for v in values if v != author[field]]
    return rng.sample(pool, N_PERTURBED)


def _author_rows(rng, author, titles):
    """Six QA rows for one author (one per fact kind, in a per-author order), with TOFU's perturbed columns."""
    kinds = list(FACTS)
    rng.shuffle(kinds)
    rows = []
    for kind in kinds:
        spec = FACTS[kind]
        question_t, para_question_t = rng.sample(spec["questions"], 2)
        para_t = rng.choice(spec["paraphrases"])
        rows.append({
            "question": _sentence(question_t, author),
            "answer": _sentence(rng.choice(spec["answers"]), author),
            "paraphrased_answer": _sentence(para_t, author),
            "paraphrased_question": _sentence(para_question_t, author),
            "perturbed_answer": [_sentence(para_t, {**author, **wrong})
                                 for wrong in _wrong_values(rng, kind, author, titles)],
        })
    return rows


def _qa(rows):
    return [{"question": r["question"], "answer": r["answer"]} for r in rows]


def _real(facts, perturbed):
    return [{"question": q, "answer": a, **({"perturbed_answer": list(p)} if perturbed else {})} for q, a, p in facts]


def build_configs(seed=SEED):
    """All TOFU configs as {config name: list of rows}, plus the author names in `full` order (for tests)."""
    rng = random.Random(seed)
    Faker.seed(seed)
    used_names = set()
    authors = _make_authors(rng, N_AUTHORS, used_names)
    holdout_authors = _make_authors(rng, N_HOLDOUT, used_names)
    titles = _assign_books(rng, authors + holdout_authors)
    rows = [_author_rows(rng, a, titles) for a in authors]
    holdout_rows = [_author_rows(rng, a, titles) for a in holdout_authors]

    flat = [r for author_rows in rows for r in author_rows]
    configs = {"full": _qa(flat)}
    for pct, k in FORGET_AUTHORS.items():
        # TOFU takes forget sets from the end of full and keeps full's order in retain.
        forget = [r for author_rows in rows[-k:] for r in author_rows]
        configs[f"forget{pct}"] = _qa(forget)
        configs[f"retain{100 - int(pct)}"] = _qa([r for author_rows in rows[:-k] for r in author_rows])
        configs[f"forget{pct}_perturbed"] = forget
        configs[f"holdout{pct}"] = _qa([r for author_rows in holdout_rows[-k:] for r in author_rows])
    configs["retain_perturbed"] = [r for author_rows in rows[:RETAIN_PERTURBED_AUTHORS] for r in author_rows]
    configs["real_authors"] = _real(REAL_AUTHORS, perturbed=False)
    configs["real_authors_perturbed"] = _real(REAL_AUTHORS, perturbed=True)
    configs["world_facts"] = _real(WORLD_FACTS, perturbed=False)
    configs["world_facts_perturbed"] = _real(WORLD_FACTS, perturbed=True)
    return configs, [a["name"] for a in authors], [a["name"] for a in holdout_authors]


def write_configs(configs, out_dir):
    """Write one `<config>.jsonl` per config, atomically (tmp file + os.replace)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in configs.items():
        path = out_dir / f"{name}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: the bundled copy)")
    args = parser.parse_args(argv)
    configs, _, _ = build_configs()
    write_configs(configs, args.out)
    for name, rows in configs.items():
        print(f"{name:24s} {len(rows):4d} rows")
    print(f"wrote {len(configs)} files to {args.out}")


if __name__ == "__main__":
    main()
