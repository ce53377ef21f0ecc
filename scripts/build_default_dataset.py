"""Build the embedded default instruction data set of adaptive-lora.

Writes ``src/adaptive_lora/data/assets/default.json``: a JSON list of records in the
Stanford Alpaca format (``instruction``, ``input``, ``output``; all strings, ``input``
may be empty).

Two kinds of records are combined:

* hand-written records, read from one Markdown file per task type in ``data/default_dataset/``
  (the format is described in ``data/default_dataset/README.md``);
* generated records for template-friendly tasks (arithmetic word problems, unit conversions,
  sorting, counting, reversing), produced by seeded generators whose answers are computed here.

The output is deterministic: running the script twice gives byte-identical files.

Usage::

    python scripts/build_default_dataset.py            # write the data set
    python scripts/build_default_dataset.py --stats    # also print counts per task type
    python scripts/build_default_dataset.py --check    # fail if the file on disk is stale
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Iterator, NamedTuple

from adaptive_lora._io import atomic_write_text
from adaptive_lora.errors import UserError

SEED = 20240611
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "src" / "adaptive_lora" / "data" / "assets" / "default.json"
DEFAULT_SOURCES = REPO_ROOT / "data" / "default_dataset"

# The files <task>.md are read in this order. The order feeds the seeded shuffle, so reordering
# this tuple (or records inside a file) reorders default.json without changing its content.
HANDWRITTEN_TASKS = (
    "open_qa",
    "how_to",
    "definition",
    "comparison",
    "list_brainstorm",
    "creative",
    "rewriting",
    "summarization",
    "classification",
    "extraction",
    "editing",
    "reasoning",
    "code",
)
GENERATED_TASKS = (
    "arithmetic_word_problem",
    "unit_conversion",
    "sorting",
    "counting",
    "reversing",
)


class Entry(NamedTuple):
    """One record with what the build needs to know about it but does not write out."""

    task: str
    record: dict[str, str]
    where: str  # "data/default_dataset/code.md:12" for hand-written records


# ---------------------------------------------------------------------------------------------
# Hand-written records: data/default_dataset/<task>.md
# ---------------------------------------------------------------------------------------------

HEADING_RE = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")  # a Markdown ATX heading
SECTIONS = {"input", "output"}


def _display(path: Path) -> str:
    """The path as the user should see it in a message: relative to the repository if inside."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _tokens(text: str, task: str, name: str) -> Iterator[tuple[str, str, str]]:
    """Classify each line as ("title" | "record" | "section" | "text", value, "file:line").

    Lines inside ``` fences are always text: code in an output may start with '#'.
    """
    fence_at = None
    for number, line in enumerate(text.split("\n"), start=1):
        where = f"{name}:{number}"
        if line.startswith("```"):
            fence_at = None if fence_at else where
        match = None if fence_at or line.startswith("```") else HEADING_RE.match(line)
        if not match:
            yield "text", line, where
            continue
        level, title = len(match.group(1)), match.group(2) or ""
        if level == 1:
            yield "title", line, where
        elif level == 2 and title in HANDWRITTEN_TASKS:
            if title != task:
                raise UserError(f"{where}: a `## {title}` record belongs in {title}.md, not here; move it")
            yield "record", title, where
        elif level == 2:
            raise UserError(f"{where}: unknown task type {title!r}; use `## {task}` in this file")
        elif level == 3 and title in SECTIONS:
            yield "section", title, where
        else:
            raise UserError(
                f"{where}: unexpected heading {line!r}; a record has only `## {task}`, `### input` and "
                "`### output` (put a text line that starts with '#' inside a ``` fence)"
            )
    if fence_at:
        raise UserError(f"{fence_at}: this ``` fence is never closed; add a closing ``` line")


def parse_source(text: str, task: str, name: str) -> list[Entry]:
    """The records of one source file, in file order. ``name`` is only used in messages."""
    records: list[tuple[str, list[tuple[str, list[str], str]]]] = []
    for kind, value, where in _tokens(text, task, name):
        if kind == "record":
            records.append((where, [("instruction", [], where)]))
        elif not records:  # the preamble: a title and free text about the file
            if kind == "section":
                raise UserError(f"{where}: `### {value}` before the first `## {task}` heading; add one above it")
        elif kind == "title":
            raise UserError(
                f"{where}: unexpected heading {value!r}; a `# ` title may only open the file "
                "(put a data line that starts with '#' inside a ``` fence)"
            )
        elif kind == "section":
            records[-1][1].append((value, [], where))
        else:
            records[-1][1][-1][1].append(value)
    if not records:
        raise UserError(f"{name}: no records; start each one with a `## {task}` heading")
    return [Entry(task, _record(sections, task, where), where) for where, sections in records]


def _record(sections: list[tuple[str, list[str], str]], task: str, where: str) -> dict[str, str]:
    """One record from its sections, or a UserError that names the section to fix."""
    texts: dict[str, str] = {}
    for key, lines, at in sections:
        if key in texts:
            raise UserError(f"{at}: `### {key}` appears twice in one record; keep one")
        if key == "input" and "output" in texts:
            raise UserError(f"{at}: `### input` after `### output`; move the input above the output")
        texts[key] = "\n".join(lines).strip()
        if key != "instruction" and not texts[key]:
            raise UserError(f"{at}: empty `### {key}` section; write it or delete the heading")
    if "output" not in texts:
        raise UserError(f"{where}: the record has no `### output` section; add one at its end")
    if not texts["instruction"]:
        raise UserError(f"{where}: empty instruction; write the task right under `## {task}`")
    return {key: texts.get(key, "") for key in ("instruction", "input", "output")}


def read_sources(source_dir: Path) -> list[Entry]:
    """All hand-written records: the files ``<task>.md`` in HANDWRITTEN_TASKS order."""
    if not source_dir.is_dir():
        raise UserError(f"{_display(source_dir)} is not a folder; pass --source-dir with the record files")
    expected = {f"{task}.md" for task in HANDWRITTEN_TASKS} | {"README.md"}
    for path in sorted(source_dir.iterdir()):
        if path.name not in expected:
            raise UserError(
                f"{_display(path)} is not read; name record files <task type>.md with a task type "
                f"from: {', '.join(HANDWRITTEN_TASKS)}"
            )
    entries = []
    for task in HANDWRITTEN_TASKS:
        path = source_dir / f"{task}.md"
        if not path.is_file():
            raise UserError(f"{_display(path)} is missing; every hand-written task type needs its file")
        entries.extend(parse_source(path.read_text(encoding="utf-8"), task, _display(path)))
    return entries


# ---------------------------------------------------------------------------------------------
# Formatting helpers for generated records
# ---------------------------------------------------------------------------------------------


def fmt_num(value, places: int = 2) -> str:
    """Decimal text of ``value`` rounded half up to ``places``, trailing zeros removed."""
    return _fmt(value, places)[0]


def _fmt(value, places: int = 2) -> tuple[str, bool]:
    x = Fraction(value)
    scaled = abs(x) * 10**places
    rounded = int(scaled + Fraction(1, 2))  # half up; scaled is non-negative
    whole, frac = divmod(rounded, 10**places)
    frac_text = f"{frac:0{places}d}".rstrip("0")
    text = str(whole) + ("." + frac_text if frac_text else "")
    if x < 0 and rounded:
        text = "-" + text
    return text, scaled.denominator == 1


def money(cents: int, always_cents: bool = False) -> str:
    if cents % 100 == 0 and not always_cents:
        return f"${cents // 100}"
    return f"${cents // 100}.{cents % 100:02d}"


def hm(hours: int, minutes: int) -> str:
    hour_word = "hour" if hours == 1 else "hours"
    return f"{hours} {hour_word} and {minutes} minutes"


def clock(total_minutes: int) -> str:
    return f"{total_minutes // 60:02d}:{total_minutes % 60:02d}"


# The word lists of the generators stay here, next to the code that draws from them, rather than
# in data/default_dataset/: a seeded generator's draws depend on each list's order and length,
# several lists carry the numeric ranges and factors its arithmetic relies on, and none of them is
# a record. Editing one changes every later draw, which reads more plainly beside the generator.
NAMES = [
    "Maya", "Leo", "Aisha", "Tom", "Nina", "Omar", "Grace", "Ravi", "Elena", "Sam",
    "Yuki", "Ben", "Zara", "Felix", "Ines", "Kofi", "Lena", "Marco", "Priya", "Jonas",
]

# ---------------------------------------------------------------------------------------------
# Generated: arithmetic word problems (10 templates x 4 instances)
# ---------------------------------------------------------------------------------------------

SHOP_ITEMS = [
    ("notebooks", 150, 400, 25),
    ("pens", 80, 250, 10),
    ("muffins", 200, 350, 25),
    ("bus tickets", 180, 320, 20),
    ("apples", 40, 90, 5),
    ("packets of seeds", 120, 300, 20),
]


def problem_shopping(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item, low, high, step = rng.choice(SHOP_ITEMS)
    count = rng.randint(2, 6)
    price = rng.randrange(low, high + 1, step)
    total = count * price
    note = next(n for n in (500, 1000, 2000, 5000) if n > total)
    change = note - total
    p, t, n, c = (money(x, True) for x in (price, total, note, change))
    if variant == 0:
        q = f"{name} buys {count} {item} at {p} each and pays with a {money(note)} note. How much change does {name} get?"
    else:
        q = f"{count} {item} cost {p} each. If {name} pays with a {money(note)} note, how much change should {name} receive?"
    a = f"The {item} cost {count} × {p} = {t}. The change is {n} − {t} = {c}. {name} gets {c} in change."
    return q, a


MOVERS = [
    ("cyclist", "rides", 12, 24, 1),
    ("runner", "runs", 8, 14, 1),
    ("train", "travels", 60, 160, 10),
    ("delivery van", "drives", 40, 90, 5),
    ("ferry", "sails", 20, 40, 2),
]
TRIP_HOURS = [Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)]


def problem_speed(rng: random.Random, variant: int) -> tuple[str, str]:
    noun, verb, low, high, step = rng.choice(MOVERS)
    speed = rng.randrange(low, high + 1, step)
    hours = rng.choice(TRIP_HOURS)
    distance = speed * hours
    v, h, d = fmt_num(speed), fmt_num(hours), fmt_num(distance)
    mode = rng.randrange(3)
    if mode == 0:
        q = f"A {noun} {verb} at a steady {v} km/h for {h} hours. How far does the {noun} travel?"
        a = f"Distance = speed × time = {v} km/h × {h} h = {d} km. The {noun} travels {d} km."
    elif mode == 1:
        q = f"A {noun} has to cover {d} km at an average speed of {v} km/h. How long will the trip take?"
        extra = ""
        if hours.denominator != 1:
            extra = f", which is {hm(int(hours), int((hours - int(hours)) * 60))}"
        a = f"Time = distance ÷ speed = {d} km ÷ {v} km/h = {h} hours{extra}."
    else:
        q = f"A {noun} covers {d} km in {h} hours. What is the {noun}'s average speed?"
        a = f"Average speed = distance ÷ time = {d} km ÷ {h} h = {v} km/h."
    if variant == 1:
        q = q.replace("A ", "Suppose a ", 1)
    return q, a


SHARE_THINGS = ["stickers", "marbles", "sweets", "stamps", "trading cards", "crayons"]


def problem_sharing(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    things = rng.choice(SHARE_THINGS)
    total = rng.randint(20, 95)
    groups = rng.randint(3, 9)
    each, left = divmod(total, groups)
    if variant == 0:
        q = f"{name} has {total} {things} and shares them equally among {groups} friends. How many does each friend get, and how many are left over?"
        who = "friend"
    else:
        q = f"{total} {things} are divided equally between {groups} children. How many does each child get, and how many are left over?"
        who = "child"
    if left == 0:
        a = f"{total} ÷ {groups} = {each} exactly, because {groups} × {each} = {total}. Each {who} gets {each} {things}, and none are left over."
    else:
        rest = "1 is left over" if left == 1 else f"{left} are left over"
        a = (
            f"{total} ÷ {groups} = {each} remainder {left}, because {groups} × {each} = {groups * each} "
            f"and {total} − {groups * each} = {left}. Each {who} gets {each} {things}, and {rest}."
        )
    return q, a


SALE_ITEMS = ["jacket", "pair of trainers", "desk lamp", "backpack", "coffee maker", "bookshelf"]


def problem_discount(rng: random.Random, variant: int) -> tuple[str, str]:
    item = rng.choice(SALE_ITEMS)
    price = rng.randrange(30, 201, 5) * 100
    percent = rng.choice([10, 15, 20, 25, 30, 40, 50])
    discount = price * percent // 100
    sale = price - discount
    cents = discount % 100 != 0
    p, d, s = (money(x, cents) for x in (price, discount, sale))
    if variant == 0:
        q = f"A {item} normally costs {money(price)}. It is on sale at {percent}% off. What is the sale price?"
    else:
        q = f"How much do you pay for a {item} priced at {money(price)} if you get a {percent}% discount?"
    a = (
        f"The discount is {percent}% of {p}: {fmt_num(Fraction(percent, 100))} × {p} = {d}. "
        f"The price after the discount is {p} − {d} = {s}."
    )
    return q, a


def problem_rectangle(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        length = rng.randint(6, 25)
        width = rng.randint(3, length - 1)
        q = f"A rectangular garden is {length} m long and {width} m wide. How much fencing is needed to go all the way around it, and what is its area?"
        perimeter = 2 * (length + width)
        a = (
            f"Perimeter = 2 × ({length} + {width}) = 2 × {length + width} = {perimeter} m, so {perimeter} metres "
            f"of fencing are needed. Area = {length} × {width} = {length * width} square metres."
        )
    else:
        length = rng.randint(3, 9)
        width = rng.randint(2, length)
        q = f"A room measures {length} m by {width} m. How many square metres of carpet are needed to cover the floor?"
        a = f"Area = length × width = {length} × {width} = {length * width} square metres, so {length * width} m² of carpet are needed."
    return q, a


def problem_average(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        name = rng.choice(NAMES)
        values = [rng.randint(55, 100) for _ in range(4)]
        listed = ", ".join(str(v) for v in values[:-1]) + f" and {values[-1]}"
        q = f"{name} scored {listed} on four tests. What is the average score?"
        unit = ""
    else:
        values = [rng.randint(10, 30) for _ in range(5)]
        listed = ", ".join(str(v) for v in values[:-1]) + f" and {values[-1]}"
        q = f"The daily high temperatures over five days were {listed} °C. What was the average daily high?"
        unit = " °C"
    total = sum(values)
    mean = Fraction(total, len(values))
    a = (
        f"Sum = {' + '.join(str(v) for v in values)} = {total}. "
        f"Average = {total} ÷ {len(values)} = {fmt_num(mean)}{unit}."
    )
    return q, a


def problem_clock(rng: random.Random, variant: int) -> tuple[str, str]:
    if variant == 0:
        start = rng.randint(13, 20) * 60 + rng.randrange(0, 60, 5)
        length = rng.choice([m for m in range(85, 176, 5) if m % 60])
        hours, minutes = divmod(length, 60)
        q = f"A film starts at {clock(start)} and runs for {length} minutes. What time does it end?"
        lead = f"{length} minutes is {hm(hours, minutes)}. "
        subject = "The film ends"
    else:
        start = rng.randint(6, 19) * 60 + rng.randrange(0, 60, 5)
        hours, minutes = rng.randint(1, 3), rng.randrange(5, 60, 5)
        q = f"A train leaves at {clock(start)} and the journey takes {hm(hours, minutes)}. When does it arrive?"
        lead = ""
        subject = "The train arrives"
    middle = start + hours * 60
    end = middle + minutes
    a = (
        f"{lead}{clock(start)} plus {hours} {'hour' if hours == 1 else 'hours'} is {clock(middle)}, "
        f"and {clock(middle)} plus {minutes} minutes is {clock(end)}. {subject} at {clock(end)}."
    )
    return q, a


def problem_ages(rng: random.Random, variant: int) -> tuple[str, str]:
    first, second = rng.sample(NAMES, 2)
    if variant == 0:
        younger = rng.randint(6, 40)
        gap = rng.randint(2, 12)
        total = 2 * younger + gap
        q = f"{first} is {gap} years older than {second}. Their ages add up to {total}. How old is each of them?"
        a = (
            f"Let {second}'s age be x. Then {first} is x + {gap}, so x + (x + {gap}) = {total}. "
            f"That gives 2x = {total} − {gap} = {total - gap}, so x = {younger}. "
            f"{second} is {younger} years old and {first} is {younger + gap}."
        )
    else:
        child = rng.randint(8, 16)
        factor = 4 if child <= 12 and rng.random() < 0.5 else 3
        gap = child * (factor - 1)
        q = f"{first}'s father is {factor} times as old as {first}, and he is {gap} years older. How old are they?"
        a = (
            f"Let {first}'s age be x. The father is {factor}x, and {factor}x − x = {gap}, so {factor - 1}x = {gap} "
            f"and x = {gap} ÷ {factor - 1} = {child}. {first} is {child} years old and the father is {factor * child}."
        )
    return q, a


RECIPE_SOLIDS = [("flour", 40, 100), ("rice", 60, 100), ("pasta", 80, 120), ("sugar", 20, 50), ("butter", 15, 40)]


def problem_recipe(rng: random.Random, variant: int) -> tuple[str, str]:
    serves = rng.choice([2, 4, 6, 8])
    people = rng.choice([n for n in range(1, 13) if n != serves])
    if variant == 0:
        ingredient, low, high = rng.choice(RECIPE_SOLIDS)
        per_person = rng.randrange(low, high + 1, 5)
        unit = "g"
        q = f"A recipe for {serves} people uses {per_person * serves} g of {ingredient}. How much {ingredient} is needed for {people} people?"
    else:
        per_person = rng.randrange(150, 301, 25)
        unit = "ml"
        q = f"A soup for {serves} people needs {per_person * serves} ml of stock. How much stock is needed to make it for {people} people?"
    needed = per_person * people
    a = (
        f"Per person: {per_person * serves} {unit} ÷ {serves} = {per_person} {unit}. "
        f"For {people} {'person' if people == 1 else 'people'}: {per_person} {unit} × {people} = {needed} {unit}."
    )
    if needed >= 1000:
        big = "kg" if unit == "g" else "litres"
        a += f" That is {fmt_num(Fraction(needed, 1000), 3)} {big}."
    return q, a


SAVE_ITEMS = ["bicycle", "guitar", "tablet", "pair of headphones", "skateboard", "camera"]


def problem_saving(rng: random.Random, variant: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item = rng.choice(SAVE_ITEMS)
    weekly = rng.randint(5, 25)
    price = rng.randrange(max(60, 3 * weekly), 401, 5)
    weeks, rest = divmod(price, weekly)
    if variant == 0:
        q = f"{name} saves ${weekly} every week to buy a {item} that costs ${price}. How many weeks will it take to save enough?"
        who = name
    else:
        q = f"A {item} costs ${price}. If you put aside ${weekly} a week, after how many weeks can you buy it?"
        who = "you"
    if rest == 0:
        a = f"${price} ÷ ${weekly} = {weeks} exactly, so it takes {weeks} weeks."
    else:
        has = "has" if who != "you" else "have"
        a = (
            f"${price} ÷ ${weekly} = {weeks} remainder {rest}. After {weeks} weeks {who} {has} "
            f"{weeks} × ${weekly} = ${weeks * weekly}, which is still ${price - weeks * weekly} short, "
            f"so it takes {weeks + 1} weeks."
        )
    return q, a


PROBLEM_TEMPLATES = (
    problem_shopping,
    problem_speed,
    problem_sharing,
    problem_discount,
    problem_rectangle,
    problem_average,
    problem_clock,
    problem_ages,
    problem_recipe,
    problem_saving,
)


def generate_word_problems(rng: random.Random, per_template: int = 4) -> list[tuple[str, dict[str, str]]]:
    out, seen = [], set()
    for template in PROBLEM_TEMPLATES:
        made = 0
        while made < per_template:
            q, a = template(rng, made % 2)
            if q in seen:
                continue
            seen.add(q)
            out.append(("arithmetic_word_problem", {"instruction": q, "input": "", "output": a}))
            made += 1
    return out


# ---------------------------------------------------------------------------------------------
# Generated: unit conversions (16 kinds x 2 values)
# ---------------------------------------------------------------------------------------------

# (from plural, from symbol, to plural, to symbol, operation, factor, rule, candidate values)
LINEAR_CONVERSIONS = [
    ("kilometres", "km", "miles", "miles", "div", "1.609344", "1 mile = 1.609344 km", ["5", "10", "42", "100", "160"]),
    ("miles", "miles", "kilometres", "km", "mul", "1.609344", "1 mile = 1.609344 km", ["3", "26", "60", "150"]),
    ("kilograms", "kg", "pounds", "lb", "div", "0.45359237", "1 pound = 0.45359237 kg", ["2", "5", "68", "80"]),
    ("pounds", "lb", "kilograms", "kg", "mul", "0.45359237", "1 pound = 0.45359237 kg", ["10", "12", "35", "150"]),
    ("centimetres", "cm", "inches", "in", "div", "2.54", "1 inch = 2.54 cm", ["30", "75", "180", "12.7"]),
    ("inches", "in", "centimetres", "cm", "mul", "2.54", "1 inch = 2.54 cm", ["6", "12", "27", "55"]),
    ("feet", "ft", "metres", "m", "mul", "0.3048", "1 foot = 0.3048 m", ["6", "10", "328", "1000"]),
    ("metres", "m", "feet", "ft", "div", "0.3048", "1 foot = 0.3048 m", ["2", "50", "100", "400"]),
    ("litres", "L", "US gallons", "US gal", "div", "3.785411784", "1 US gallon = 3.785411784 litres", ["4", "10", "50", "200"]),
    ("US gallons", "US gal", "litres", "L", "mul", "3.785411784", "1 US gallon = 3.785411784 litres", ["2", "5", "12", "20"]),
    ("grams", "g", "ounces", "oz", "div", "28.349523125", "1 ounce = 28.349523125 g", ["50", "100", "250", "500"]),
    ("kilometres per hour", "km/h", "metres per second", "m/s", "div", "3.6", "1 m/s = 3.6 km/h", ["36", "50", "90", "100"]),
    ("square metres", "m²", "square feet", "sq ft", "div", "0.09290304", "1 square foot = 0.09290304 m²", ["12", "20", "45", "100"]),
]


def _conversion_question(form: int, value: str, src: str, src_sym: str, dst: str) -> tuple[str, str]:
    if form == 0:
        return f"Convert {value} {src} to {dst}.", ""
    if form == 1:
        return f"How many {dst} are there in {value} {src}?", ""
    if form == 2:
        return f"What is {value} {src} in {dst}?", ""
    return f"Convert this measurement to {dst}.", f"{value} {src_sym}"


def generate_conversions(rng: random.Random, per_kind: int = 2) -> list[tuple[str, dict[str, str]]]:
    out = []
    form = 0

    def add(question: tuple[str, str], answer: str) -> None:
        out.append(("unit_conversion", {"instruction": question[0], "input": question[1], "output": answer}))

    for src, src_sym, dst, dst_sym, op, factor_text, rule, values in LINEAR_CONVERSIONS:
        factor = Fraction(factor_text)
        for value_text in rng.sample(values, per_kind):
            value = Fraction(value_text)
            result = value * factor if op == "mul" else value / factor
            text, exact = _fmt(result)
            sign = "=" if exact else "≈"
            if op == "mul":
                how = f"Since {rule}, multiply by {factor_text}: {value_text} {src_sym} × {factor_text} {sign} {text} {dst_sym}."
            else:
                how = f"Since {rule}, divide by {factor_text}: {value_text} {src_sym} ÷ {factor_text} {sign} {text} {dst_sym}."
            add(_conversion_question(form % 4, value_text, src, src_sym, dst), how)
            form += 1

    for value_text in rng.sample(["25", "37", "100", "-10", "180"], per_kind):
        c = Fraction(value_text)
        step = c * Fraction(9, 5)
        f_text = fmt_num(step + 32)
        answer = (
            f"Multiply by 9/5 and add 32: {value_text} × 9/5 + 32 = {fmt_num(step)} + 32 = {f_text} °F. "
            f"So {value_text} °C is {f_text} °F."
        )
        question = _conversion_question(form % 4, value_text, "degrees Celsius", "°C", "degrees Fahrenheit")
        if form % 4 == 1:
            question = (f"Express {value_text} °C in degrees Fahrenheit.", "")
        add(question, answer)
        form += 1

    for value_text in rng.sample(["0", "50", "98.6", "212", "350"], per_kind):
        f = Fraction(value_text)
        diff = f - 32
        c_text, exact = _fmt(diff * Fraction(5, 9))
        sign = "=" if exact else "≈"
        answer = (
            f"Subtract 32 and multiply by 5/9: ({value_text} − 32) × 5/9 = {fmt_num(diff)} × 5/9 {sign} {c_text} °C. "
            f"So {value_text} °F is {'' if exact else 'about '}{c_text} °C."
        )
        question = _conversion_question(form % 4, value_text, "degrees Fahrenheit", "°F", "degrees Celsius")
        if form % 4 == 1:
            question = (f"Express {value_text} °F in degrees Celsius.", "")
        add(question, answer)
        form += 1

    for minutes in rng.sample([75, 95, 135, 200, 250], per_kind):
        hours, rest = divmod(minutes, 60)
        answer = (
            f"{minutes} minutes is {hm(hours, rest)}, because {hours} × 60 = {hours * 60} "
            f"and {minutes} − {hours * 60} = {rest}."
        )
        if form % 4 == 3:
            question = ("Convert this duration to hours and minutes.", f"{minutes} minutes")
        else:
            question = (f"Convert {minutes} minutes to hours and minutes.", "")
            if form % 4 == 1:
                question = (f"How many hours and minutes are there in {minutes} minutes?", "")
        add(question, answer)
        form += 1
    return out


# ---------------------------------------------------------------------------------------------
# Generated: sorting, counting and reversing
# ---------------------------------------------------------------------------------------------

SORT_WORDS = [
    "river", "apple", "candle", "mountain", "zebra", "orange", "kettle", "banana", "window",
    "lemon", "garden", "piano", "tiger", "violin", "pencil", "cloud", "harbour", "meadow",
    "jacket", "rocket", "basket", "dolphin", "forest", "island", "noodle", "quartz", "umbrella",
    "walnut", "yogurt", "eagle", "falcon", "ginger", "hammer", "igloo", "jungle", "koala",
    "ladder", "magnet", "needle", "olive", "puzzle", "saddle", "tunnel", "velvet", "wagon",
]


def generate_sorting(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    ascending = ["Sort these numbers from smallest to largest.", "Arrange the following numbers in ascending order."]
    descending = ["Sort these numbers from largest to smallest.", "Arrange the following numbers in descending order."]
    words = ["Put these words in alphabetical order.", "Sort the following words alphabetically."]
    for i in range(5):
        low = -50 if i >= 3 else 1
        numbers = rng.sample(range(low, 200), rng.randint(5, 8))
        out.append(("sorting", {
            "instruction": ascending[i % 2],
            "input": ", ".join(map(str, numbers)),
            "output": ", ".join(map(str, sorted(numbers))),
        }))
    for i in range(4):
        numbers = rng.sample(range(1, 500), rng.randint(5, 8))
        out.append(("sorting", {
            "instruction": descending[i % 2],
            "input": ", ".join(map(str, numbers)),
            "output": ", ".join(map(str, sorted(numbers, reverse=True))),
        }))
    for i in range(5):
        chosen = rng.sample(SORT_WORDS, rng.randint(5, 7))
        out.append(("sorting", {
            "instruction": words[i % 2],
            "input": ", ".join(chosen),
            "output": ", ".join(sorted(chosen)),
        }))
    return out


COUNT_SENTENCES = [
    "The old lighthouse keeper painted the door bright yellow",
    "Our neighbours grow tomatoes and beans on their balcony",
    "A small boat drifted slowly across the calm green lake",
    "Please remember to water the plants while I am away",
    "The library will stay open late during exam week",
    "Fresh bread smells wonderful early in the morning",
    "Three curious foxes watched the campers from behind the trees",
]
REVERSE_SENTENCES = [
    "She practised the piano every evening after dinner",
    "The museum guide told us a story about a lost painting",
    "Heavy snow closed the mountain pass for two days",
    "My grandfather still writes letters with a fountain pen",
    "The children built a sandcastle with a tall tower",
    "A gentle breeze carried the scent of pine through the valley",
    "We missed the last train and walked home under the stars",
]
LETTER_WORDS = [
    "banana", "mississippi", "bookkeeper", "committee", "strawberry", "balloon", "parallel",
    "assessment", "coffee", "referee", "successful", "tomorrow", "engineering", "bubble",
]
REVERSE_WORDS = [
    "planet", "journey", "window", "garden", "pencil", "rhythm", "lantern", "harvest",
    "compass", "orchard", "blanket", "thunder",
]


def generate_counting(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    word_questions = ["How many words are in this sentence?", "Count the words in the following sentence."]
    for i, sentence in enumerate(COUNT_SENTENCES):
        words = sentence.split()
        listed = ", ".join(f"{w} ({k})" for k, w in enumerate(words, start=1))
        out.append(("counting", {
            "instruction": word_questions[i % 2],
            "input": sentence + ".",
            "output": f"Counting the words one by one: {listed}. The sentence has {len(words)} words.",
        }))
    for i, word in enumerate(rng.sample(LETTER_WORDS, 7)):
        counts = Counter(word)
        letter = rng.choice(sorted(ch for ch, n in counts.items() if n >= 2))
        if i % 2 == 0:
            question = f'How many times does the letter "{letter}" appear in this word?'
        else:
            question = f'Count how often the letter "{letter}" occurs in the following word.'
        out.append(("counting", {
            "instruction": question,
            "input": word,
            "output": f'Spelled out, "{word}" is {"-".join(word)}. The letter "{letter}" appears {counts[letter]} times.',
        }))
    return out


def generate_reversing(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    out = []
    sentence_questions = [
        "Reverse the order of the words in this sentence.",
        "Write this sentence with its words in reverse order.",
    ]
    for i, sentence in enumerate(REVERSE_SENTENCES):
        out.append(("reversing", {
            "instruction": sentence_questions[i % 2],
            "input": sentence,
            "output": " ".join(reversed(sentence.split())),
        }))
    word_questions = ["Reverse the letters of this word.", "Spell the following word backwards."]
    for i, word in enumerate(rng.sample(REVERSE_WORDS, 7)):
        out.append(("reversing", {
            "instruction": word_questions[i % 2],
            "input": word,
            "output": f'"{word}" written backwards is "{word[::-1]}".',
        }))
    return out




# ---------------------------------------------------------------------------------------------
# Assembly, checks and output
# ---------------------------------------------------------------------------------------------

MAX_OUTPUT_WORDS = 150
MAX_GENERATED_SHARE = 0.35
GENERATORS = (
    (generate_word_problems, 1),
    (generate_conversions, 2),
    (generate_sorting, 3),
    (generate_counting, 4),
    (generate_reversing, 5),
)


def build_records(source_dir: Path = DEFAULT_SOURCES) -> list[Entry]:
    """All records in their final (shuffled) order, after the checks."""
    entries = read_sources(source_dir)
    for generate, seed_offset in GENERATORS:
        for task, record in generate(random.Random(SEED + seed_offset)):
            entries.append(Entry(task, record, f"generated {task} record {record['instruction']!r}"))
    check_records(entries)
    random.Random(SEED).shuffle(entries)
    return entries


def check_records(entries: list[Entry]) -> None:
    """Checks on the assembled records; each message names the record's file and line."""
    seen: dict[tuple[str, str], str] = {}
    for task, record, where in entries:
        if task not in HANDWRITTEN_TASKS + GENERATED_TASKS:
            raise UserError(f"{where}: unknown task type {task!r}")
        fields_ok = list(record) == ["instruction", "input", "output"]
        if not fields_ok or not all(isinstance(v, str) for v in record.values()):
            raise UserError(f"{where}: a record needs exactly the string fields instruction, input, output")
        if not record["instruction"].strip() or not record["output"].strip():
            raise UserError(f"{where}: empty instruction or output; write both")
        key = (record["instruction"], record["input"])
        if key in seen:
            raise UserError(f"{where}: same instruction and input as {seen[key]}; change or remove one")
        seen[key] = where
        words = len(record["output"].split())
        if words > MAX_OUTPUT_WORDS:
            raise UserError(f"{where}: output of {words} words; shorten it to {MAX_OUTPUT_WORDS} or fewer")
    generated = sum(entry.task in GENERATED_TASKS for entry in entries)
    if generated > MAX_GENERATED_SHARE * len(entries):
        raise UserError(
            f"{generated} of {len(entries)} records are generated (limit {MAX_GENERATED_SHARE:.0%}); "
            "add hand-written records or generate fewer"
        )


def render(entries: list[Entry]) -> str:
    return json.dumps([entry.record for entry in entries], indent=1, ensure_ascii=False) + "\n"


def print_stats(entries: list[Entry]) -> None:
    counts = Counter(entry.task for entry in entries)
    with_input = Counter(entry.task for entry in entries if entry.record["input"])
    print(f"{'task type':<26}{'source':<14}{'records':>8}{'with input':>12}")
    for task in HANDWRITTEN_TASKS + GENERATED_TASKS:
        source = "generated" if task in GENERATED_TASKS else "hand-written"
        print(f"{task:<26}{source:<14}{counts[task]:>8}{with_input[task]:>12}")
    generated = sum(counts[t] for t in GENERATED_TASKS)
    print(f"{'total':<40}{len(entries):>8}{sum(with_input.values()):>12}")
    print(f"generated share: {generated / len(entries):.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON file")
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCES, help="folder of the <task>.md files")
    parser.add_argument("--stats", action="store_true", help="print counts per task type")
    parser.add_argument("--check", action="store_true", help="only check that the file on disk is up to date")
    args = parser.parse_args(argv)

    try:
        entries = build_records(args.source_dir)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return UserError.exit_code
    text = render(entries)
    if args.stats:
        print_stats(entries)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"{_display(args.output)} is out of date; run scripts/build_default_dataset.py", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(args.output, text)
    print(f"wrote {len(entries)} records to {_display(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
