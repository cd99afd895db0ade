"""A hostile Python scorer for tests/python_scorer.rs; what it does depends on the lead id:
"loop" spins forever, "bomb" allocates until something stops it, "raise" raises an
exception, "refuse" returns a typed plugin-error; any other lead gets a valid score."""

import strata_sdk
from strata_sdk import Lead, Score


def score(lead: Lead) -> Score:
    if lead.id == "loop":
        n = 0
        while True:
            n += 1
    if lead.id == "bomb":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    if lead.id == "raise":
        raise ValueError("deliberate failure for lead " + lead.id)
    if lead.id == "refuse":
        raise strata_sdk.invalid_input("no lead called refuse")
    strata_sdk.log.info("scoring " + lead.id)
    return strata_sdk.score(50.0).factor("constant", 50.0).reasoning("always 50").build()


WitWorld = strata_sdk.export_scorer(score)
