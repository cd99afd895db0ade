"""The BANT factor rules, ported line for line from plugins/bant/src/factors.rs and
timeline.rs. Each rule returns a 0-100 score (higher = better for sales) and appends a
short explanation quoting the lead's own values to ``why`` (a list of strings).

Same outputs as the Rust scorer, bit for bit (tests/python_scorer.rs checks 1,000 leads):
numbers are written by :func:`fixed` (round half away from zero, like Rust's
``f64::round``), sums are left folds (never ``sum()``, which compensates on Python 3.12+)
and keyword matching is substring search on the lowercased text.
"""

import math


def fixed(x: float, decimals: int) -> str:
    """``x`` rounded to ``decimals`` places, half away from zero (plugins/bant's
    ``push_fixed``)."""
    n = x * float(10**decimals)
    t = math.trunc(n)
    if abs(n - t) >= 0.5:
        t += 1 if n > 0 else -1
    digits = str(abs(t)).rjust(decimals + 1, "0")
    sign = "-" if t < 0 else ""
    if decimals == 0:
        return sign + digits
    return sign + digits[:-decimals] + "." + digits[-decimals:]


def _words(text: str):
    """``text`` split at every character that is not alphanumeric."""
    words, word = [], []
    for c in text:
        if c.isalnum():
            word.append(c)
        else:
            words.append("".join(word))
            word = []
    words.append("".join(word))
    return words


def _tier(v: float, tiers) -> float:
    """The score of the first tier whose threshold ``v`` reaches; tiers high to low."""
    for minimum, s in tiers:
        if v >= minimum:
            return s
    return tiers[-1][1]


def _usable(x):
    """``x`` when it is a finite, non-negative number, else None."""
    return x if x is not None and math.isfinite(x) and x >= 0.0 else None


_BUDGET = [
    (100_000.0, 100.0),
    (50_000.0, 85.0),
    (25_000.0, 70.0),
    (10_000.0, 55.0),
    (5_000.0, 40.0),
    (0.0, 25.0),
]
_REVENUE = [(100e6, 70.0), (10e6, 60.0), (1e6, 45.0), (0.0, 30.0)]


def budget(stated, revenue, why) -> float:
    """Budget tiers (>=100k -> 100 ... >0 -> 25), +5 with revenue >= 10M; without a
    budget, revenue alone (>=100M -> 70 ... -> 30); neither -> 30."""
    revenue = _usable(revenue)
    stated = _usable(stated)
    if stated is not None:
        bonus = 5.0 if revenue is not None and revenue >= 10e6 else 0.0
        why.append("stated budget " + fixed(stated, 0))
        if revenue is not None:
            why.append(", company revenue " + fixed(revenue, 0))
        return min(_tier(stated, _BUDGET) + bonus, 100.0)
    if revenue is not None:
        why.append("no stated budget; company revenue " + fixed(revenue, 0))
        return _tier(revenue, _REVENUE)
    why.append("no budget or revenue given")
    return 30.0


_VP = {"vp", "svp", "evp", "avp"}
_C_LEVEL = {
    "ceo", "cto", "cfo", "coo", "cmo", "cro", "cio", "ciso", "founder",
    "cofounder", "owner", "president", "partner",
}
_DIRECTOR = {"director"}
_MANAGER = {"manager", "lead", "supervisor"}
_INTERN = {"intern", "student", "trainee"}


def authority(title, why) -> float:
    """C-level/founder/owner 100, VP/head of 85, director 70, manager/lead 50,
    intern/student 10, any other title 25, no title 20."""
    title = title.strip() if title is not None else ""
    if not title:
        why.append("no title given")
        return 20.0
    lower = title.lower()
    words = set(_words(lower))
    if "vice president" in lower or "head of" in lower or words & _VP:
        s, level = 85.0, "VP-level"
    elif "chief" in lower or words & _C_LEVEL:
        s, level = 100.0, "C-level"
    elif words & _DIRECTOR:
        s, level = 70.0, "director-level"
    elif words & _MANAGER:
        s, level = 50.0, "manager-level"
    elif words & _INTERN:
        s, level = 10.0, "intern/student-level"
    else:
        s, level = 25.0, "individual contributor"
    why.append("title '" + title + "' is " + level)
    return s


_PAIN = [
    "pain", "manual", "struggl", "problem", "slow", "replace", "evaluat", "urgent",
    "spreadsheet", "inefficien", "losing", "frustrat", "rfp", "demo", "pricing", "quote",
    "budget approved", "need",
]
_NO_NEED = [
    "just browsing", "no budget", "not interested", "no need", "happy with",
    "student project",
]
_TARGET_INDUSTRIES = [
    "software", "saas", "tech", "financial", "fintech", "insurance", "healthcare",
    "e-commerce", "ecommerce", "retail", "telecom", "manufacturing", "logistics",
]


def _found(words, text):
    """The keywords (in list order) that occur in ``text``."""
    return [w for w in words if w in text]


def fit(notes, industry, why) -> float:
    """Need: base 35 with notes, 30 without; +15 per pain signal, -25 per no-need signal,
    +15 for a target industry; clamped to 0-100."""
    lower = (notes or "").lower()
    pains = _found(_PAIN, lower)
    nos = _found(_NO_NEED, lower)
    no_notes = not lower.strip()
    s = 30.0 if no_notes else 35.0
    s += 15.0 * float(len(pains)) - 25.0 * float(len(nos))
    if no_notes:
        why.append("no notes")
    elif not pains and not nos:
        why.append("notes show no pain signal")
    else:
        why.append("notes signal need [" + ", ".join(pains) + "] against [" + ", ".join(nos) + "]")
    i = industry.strip() if industry is not None else ""
    if i:
        if _found(_TARGET_INDUSTRIES, i.lower()):
            s += 15.0
            why.append("; industry '" + i + "' is a target industry")
        else:
            why.append("; industry '" + i + "' is outside the target list")
    else:
        why.append("; no industry given")
    return min(max(s, 0.0), 100.0)


_REGULATED = ["bank", "government", "public sector", "defense", "defence", "pharma"]


def complexity(employees, industry, why) -> float:
    """200-4,999 employees 100, 50-199 80, 5,000+ 75, 10-49 50, under 10 25, unknown 40;
    -10 in a regulated industry."""
    if employees is None:
        why.append("company size unknown")
        s = 40.0
    else:
        n = employees
        if n >= 5000:
            s, band = 75.0, "enterprise, long buying cycle"
        elif n >= 200:
            s, band = 100.0, "mid-market sweet spot"
        elif n >= 50:
            s, band = 80.0, "growing company"
        elif n >= 10:
            s, band = 50.0, "small business"
        else:
            s, band = 25.0, "micro business"
        why.append(fixed(float(n), 0) + " employees: " + band)
    if industry is not None:
        i = industry.strip()
        if _found(_REGULATED, i.lower()):
            s -= 10.0
            why.append("; '" + i + "' adds regulatory complexity")
    return s


_PHRASES = [
    ("no timeline", 15.0),
    ("not sure", 15.0),
    ("unknown", 15.0),
    ("someday", 15.0),
    ("just looking", 15.0),
    ("immediate", 100.0),
    ("asap", 100.0),
    ("urgent", 100.0),
    ("right away", 100.0),
    ("today", 100.0),
    ("this week", 100.0),
    ("next week", 95.0),
    ("this month", 90.0),
    ("next month", 80.0),
    ("this quarter", 80.0),
    ("next quarter", 65.0),
    ("this year", 50.0),
    ("end of year", 40.0),
    ("next year", 30.0),
]


def _by_months(months: float) -> float:
    if months <= 0.5:
        return 100.0
    if months <= 1.0:
        return 90.0
    if months <= 3.0:
        return 75.0
    if months <= 6.0:
        return 55.0
    if months <= 12.0:
        return 35.0
    return 15.0


_DIGITS = "0123456789"


def _number_and_unit(text):
    """The first number in ``text`` and the word right after it: "3-6 months" -> (3,
    "months"); None when the number does not parse."""
    start = next((k for k, c in enumerate(text) if c in _DIGITS), None)
    if start is None:
        return None
    rest = text[start:]
    end = next((k for k, c in enumerate(rest) if c not in _DIGITS and c != "."), len(rest))
    try:
        n = float(rest[:end])
    except ValueError:
        return None
    unit, word = "", []
    for c in rest[end:]:
        if c.isalpha():
            word.append(c)
        elif word:
            break
    unit = "".join(word)
    return n, unit


def _months(text):
    found = _number_and_unit(text)
    if found is None:
        return None
    n, unit = found
    if unit.startswith("day"):
        return n / 30.0
    if unit.startswith("week") or unit.startswith("wk"):
        return n / 4.3
    if unit.startswith("month") or unit.startswith("mo"):
        return n
    if unit.startswith("year") or unit.startswith("yr"):
        return 12.0 * n
    return None


def timeline(text, why) -> float:
    """A known phrase (first in list order), else a named quarter (60), else "N
    days/weeks/months/years" by months; unknown or unreadable text scores 30."""
    raw = text.strip() if text is not None else ""
    if not raw:
        why.append("no timeline given")
        return 30.0
    lower = raw.lower()
    s = next((v for p, v in _PHRASES if p in lower), None)
    if s is None and any(w in ("q1", "q2", "q3", "q4") for w in _words(lower)):
        s = 60.0
    if s is None:
        months = _months(lower)
        if months is not None:
            s = _by_months(months)
    why.append("timeline '" + raw + "'")
    if s is None:
        why.append(" not understood")
        return 30.0
    return s
