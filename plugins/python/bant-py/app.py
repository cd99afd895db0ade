"""BANT scorer for B2B leads, in Python: a port of plugins/bant (Rust), same rules, same
scores, same reasoning, byte for byte (tests/python_scorer.rs).

Factors (0-100, higher is better): budget (budget, annual revenue), authority (title),
fit (need: pain keywords in the notes, target industry), timeline (free text) and
complexity (employees, industry). The value is their weighted sum (see WEIGHTS), halved
for unqualified leads and cut to a fifth for junk. Priority uses the SDK bands:
immediate >= 85, high >= 65, medium >= 40, low below. Pure: it calls no host function.
"""

import strata_sdk
from strata_sdk import Lead, LeadStatus, Priority, Score

import bant_rules as rules
from bant_rules import fixed

#: Factor weights; they sum to 1.
WEIGHTS = [
    ("budget", 0.25),
    ("authority", 0.20),
    ("fit", 0.25),
    ("timeline", 0.20),
    ("complexity", 0.10),
]


def score_lead(lead: Lead) -> Score:
    """Scores one lead. The reasoning reads "budget 100/100 (x0.25): stated budget 120000.
    authority ... Weighted total 91.8." """
    rule_fns = [
        lambda why: rules.budget(lead.budget, lead.annual_revenue, why),
        lambda why: rules.authority(lead.title, why),
        lambda why: rules.fit(lead.notes, lead.industry, why),
        lambda why: rules.timeline(lead.timeline, why),
        lambda why: rules.complexity(lead.employees, lead.industry, why),
    ]
    parts = []
    scores = []
    for k, (rule, (name, weight)) in enumerate(zip(rule_fns, WEIGHTS)):
        why = []
        s = rule(why)
        scores.append(s)
        if k > 0:
            parts.append(". ")
        parts.append(name + " " + fixed(s, 0) + "/100 (\u00d7" + fixed(weight, 2) + "): ")
        parts.extend(why)
    weighted = 0.0
    for s, (_, w) in zip(scores, WEIGHTS):
        weighted += s * w
    if lead.status == LeadStatus.JUNK:
        value, note = weighted * 0.2, " Lead is marked junk: score cut to a fifth."
    elif lead.status == LeadStatus.UNQUALIFIED:
        value, note = weighted * 0.5, " Lead is marked unqualified: score halved."
    else:
        value, note = weighted, ""
    parts.append(". Weighted total " + fixed(value, 1) + "." + note)

    builder = (
        strata_sdk.score(value)
        .reasoning("".join(parts))
        .action(action(strata_sdk.priority_from_score(value), scores))
        .confidence(confidence(lead))
    )
    for s, (name, _) in zip(scores, WEIGHTS):
        builder = builder.factor(name, s)
    return builder.build()


def _text(t) -> bool:
    return t is not None and bool(t.strip())


def confidence(lead: Lead) -> float:
    """0.2 with no BANT field, rising by 0.8/7 for each of budget, annual revenue, title,
    industry, notes, timeline and employees present."""
    present = [
        lead.budget is not None,
        lead.annual_revenue is not None,
        _text(lead.title),
        _text(lead.industry),
        _text(lead.notes),
        _text(lead.timeline),
        lead.employees is not None,
    ]
    return 0.2 + 0.8 * float(sum(1 for p in present if p)) / float(len(present))


def action(priority: Priority, scores) -> str:
    """The next step for the priority band, naming the weakest BANT factor to work on."""
    weakest = min(zip(scores, WEIGHTS), key=lambda sw: sw[0])[1][0]
    if priority == Priority.IMMEDIATE:
        return "Call within 24 hours: route to a senior AE and book a demo"
    if priority == Priority.HIGH:
        return "Contact within 48 hours; confirm " + weakest + " on the first call"
    if priority == Priority.MEDIUM:
        return "Nurture and qualify " + weakest + " before spending sales time"
    return "Marketing automation only; no sales action"


WitWorld = strata_sdk.export_scorer(score_lead)
