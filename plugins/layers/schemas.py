#!/usr/bin/env python3
"""Writes the JSON Schemas (draft 2020-12) of the business layers' topics and outputs.

One definition per topic: the producer's `[schemas.events]` file and every consumer's
`[schemas.inputs]` file for that topic are written from it, so they are identical (each
layer's unit tests check that too). Run from anywhere: `python3 plugins/layers/schemas.py`.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DRAFT = "https://json-schema.org/draft/2020-12/schema"

STR = {"type": "string"}
NONEMPTY = {"type": "string", "minLength": 1}
OPT_STR = {"type": ["string", "null"]}
MONEY = {"type": "number", "minimum": 0}
PRIORITY = {"enum": ["immediate", "high", "medium", "low"]}
OPT_PRIORITY = {"enum": ["immediate", "high", "medium", "low", None]}
NOW_MS = {
    "type": "integer",
    "description": "Optional explicit time (ms since the Unix epoch), passed downstream for determinism",
}
STRINGS = {"type": "array", "items": STR}
DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
UTC_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}

LEAD = {
    "type": "object",
    "description": "A lead in the CRM's shape",
    "required": ["id"],
    "properties": {
        "id": NONEMPTY,
        "name": OPT_STR,
        "email": OPT_STR,
        "company": OPT_STR,
        "title": OPT_STR,
        "industry": OPT_STR,
        "employees": {"type": ["integer", "null"], "minimum": 0},
        "annual_revenue": {"type": ["number", "null"], "minimum": 0},
        "budget": {"type": ["number", "null"], "minimum": 0},
        "timeline": OPT_STR,
        "source": OPT_STR,
        "notes": OPT_STR,
        "status": {"enum": ["new", "contacted", "nurture", "qualified", "unqualified", "junk"]},
        "attributes": {"type": "object", "additionalProperties": STR},
    },
    "additionalProperties": True,
}

ITEM = {
    "type": "object",
    "required": ["sku", "description", "quantity", "unit_price", "amount"],
    "properties": {
        "sku": NONEMPTY,
        "description": STR,
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": MONEY,
        "amount": MONEY,
    },
    "additionalProperties": False,
}

INVOICE_LINE = {
    "type": "object",
    "required": ["sku", "description", "quantity", "unit_price", "amount"],
    "properties": {
        "sku": NONEMPTY,
        "description": STR,
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": {"type": "number"},
        "amount": {"type": "number"},
    },
    "additionalProperties": False,
}

SCORE = {
    "type": "object",
    "required": ["value", "priority", "recommended_action", "reasoning", "confidence", "factors"],
    "properties": {
        "value": {"type": "number", "minimum": 0, "maximum": 100},
        "priority": PRIORITY,
        "recommended_action": STR,
        "reasoning": STR,
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "factors": {"type": "object", "additionalProperties": {"type": "number"}},
    },
    "additionalProperties": False,
}


def obj(required, props, extra=True, **kw):
    s = {"type": "object", "required": required, "properties": props, "additionalProperties": extra}
    s.update(kw)
    return s


DEAL_PROPS = {
    "deal_id": NONEMPTY,
    "lead_id": NONEMPTY,
    "proposal_id": NONEMPTY,
    "items": {"type": "array", "items": ITEM, "minItems": 1},
    "subtotal": MONEY,
    "discount_pct": {"type": "number", "minimum": 0, "maximum": 20},
    "discount": MONEY,
    "total": MONEY,
    "currency": {"const": "USD"},
    "rules": STRINGS,
    "lead": LEAD,
    "priority": OPT_PRIORITY,
    "now_ms": NOW_MS,
}
DEAL_REQ = ["deal_id", "lead_id", "proposal_id", "items", "subtotal", "discount_pct",
            "discount", "total", "currency", "rules", "lead"]

STAGE = {
    "type": "object",
    "required": ["count", "amount", "weighted"],
    "properties": {
        "count": {"type": "integer", "minimum": 0},
        "amount": {"type": "number"},
        "weighted": {"type": "number"},
    },
    "additionalProperties": False,
}

TOPICS = {
    "lead.received": obj([], {
        "external_id": {"type": ["string", "integer", "null"]},
        "name": OPT_STR, "email": OPT_STR, "company": OPT_STR, "title": OPT_STR,
        "industry": OPT_STR, "timeline": OPT_STR, "source": OPT_STR, "notes": OPT_STR,
        "country": OPT_STR,
        "employees": {"type": ["number", "string", "null"]},
        "annual_revenue": {"type": ["number", "string", "null"]},
        "budget": {"type": ["number", "string", "null"]},
        "now_ms": NOW_MS,
    }, description="A raw lead as a form, an import or a webhook delivers it"),
    "lead.accepted": obj(["lead_id", "lead", "duplicate", "changes"], {
        "lead_id": NONEMPTY, "lead": LEAD,
        "duplicate": {"type": ["boolean", "null"]},
        "changes": STRINGS, "now_ms": NOW_MS,
    }),
    "lead.rejected": obj(["reasons", "raw"], {
        "reasons": {"type": "array", "items": STR, "minItems": 1},
        "raw": {"type": "object"},
    }),
    "lead.enriched": obj(["lead_id", "lead", "company", "enriched", "filled"], {
        "lead_id": NONEMPTY, "lead": LEAD,
        "company": {"type": ["object", "null"]},
        "enriched": {"type": "boolean"},
        "filled": {"type": "array", "items": {"enum": ["employees", "industry", "annual_revenue"]}},
        "sources": {"type": "object", "additionalProperties": {"enum": ["lead", "company"]}},
        "error": OPT_STR, "now_ms": NOW_MS,
    }),
    "lead.qualified": obj(["lead_id", "lead", "score", "strategy"], {
        "lead_id": NONEMPTY, "lead": LEAD, "score": SCORE, "strategy": NONEMPTY,
        "now_ms": NOW_MS,
    }),
    "lead.nurture": obj(["lead_id", "priority", "reason"], {
        "lead_id": NONEMPTY, "priority": PRIORITY, "reason": STR,
    }),
    "booking.received": obj(["lead_id", "start", "duration_minutes"], {
        "delivery_id": {"type": ["string", "null"]},
        "lead_id": NONEMPTY, "start": UTC_TIME,
        "duration_minutes": {"type": "integer", "minimum": 15, "maximum": 240},
        "attendee_email": OPT_STR, "title": OPT_STR,
    }, description="A meeting booked through the signed booking webhook"),
    "booking.conflict": obj(["lead_id", "start", "duration_minutes", "conflicting_booking_id"], {
        "lead_id": NONEMPTY, "start": UTC_TIME,
        "duration_minutes": {"type": "integer", "minimum": 1},
        "conflicting_booking_id": NONEMPTY, "delivery_id": OPT_STR,
    }),
    "meeting.booked": obj(["booking_id", "lead_id", "start", "duration_minutes", "source"], {
        "booking_id": NONEMPTY, "lead_id": NONEMPTY, "start": UTC_TIME,
        "duration_minutes": {"type": "integer", "minimum": 1},
        "source": {"enum": ["auto", "webhook"]},
        "lead": LEAD, "priority": OPT_PRIORITY,
        "delivery_id": OPT_STR, "title": OPT_STR, "attendee_email": OPT_STR,
        "now_ms": NOW_MS,
    }),
    "proposal.drafted": obj(["proposal_id", "lead_id", "items", "subtotal", "currency",
                             "text", "fallback_used", "lead"], {
        "proposal_id": NONEMPTY, "lead_id": NONEMPTY, "booking_id": OPT_STR,
        "items": {"type": "array", "items": ITEM, "minItems": 1},
        "subtotal": MONEY, "currency": {"const": "USD"},
        "text": NONEMPTY, "fallback_used": {"type": "boolean"},
        "lead": LEAD, "priority": OPT_PRIORITY, "now_ms": NOW_MS,
    }),
    "deal.approved": obj(DEAL_REQ, DEAL_PROPS),
    "deal.review": obj(DEAL_REQ + ["reasons"], dict(DEAL_PROPS, reasons={
        "type": "array", "items": STR, "minItems": 1})),
    "project.created": obj(["project_id", "lead_id", "deal_id", "tasks"], {
        "project_id": NONEMPTY, "lead_id": NONEMPTY, "deal_id": NONEMPTY,
        "tasks": {"type": "array", "minItems": 1, "items": obj(
            ["id", "title", "role", "due_in_days"], {
                "id": NONEMPTY, "title": NONEMPTY, "role": NONEMPTY,
                "due_in_days": {"type": "integer", "minimum": 0}, "sku": STR,
            }, extra=False)},
    }),
    "invoice.issued": obj(["invoice_no", "lead_id", "deal_id", "lines", "net", "tax",
                           "total", "currency", "issued_on", "due_on"], {
        "invoice_no": {"type": "string", "pattern": r"^INV-\d{4}-\d{6,}$"},
        "lead_id": NONEMPTY, "deal_id": NONEMPTY,
        "lines": {"type": "array", "items": INVOICE_LINE, "minItems": 1},
        "net": MONEY, "tax": MONEY, "tax_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "total": MONEY, "currency": {"const": "USD"},
        "issued_on": DATE, "due_on": DATE, "now_ms": NOW_MS,
    }),
    "forecast.updated": obj(["weighted_revenue", "open_pipeline", "deals", "by_stage",
                             "changed_lead_id"], {
        "weighted_revenue": {"type": "number"}, "open_pipeline": {"type": "number"},
        "deals": {"type": "integer", "minimum": 0},
        "by_stage": {"type": "object", "additionalProperties": STAGE},
        "changed_lead_id": NONEMPTY,
    }),
}

OUTPUTS = {
    "intake": obj(["accepted", "lead_id", "duplicate", "crm", "changes", "reasons"], {
        "accepted": {"type": "boolean"}, "lead_id": OPT_STR,
        "duplicate": {"type": ["boolean", "null"]},
        "crm": {"enum": ["created", "updated", "held_back", "skipped"]},
        "changes": STRINGS, "reasons": STRINGS,
    }),
    "enrichment": obj(["lead_id", "enriched", "filled", "error"], {
        "lead_id": NONEMPTY, "enriched": {"type": "boolean"}, "filled": STRINGS,
        "error": OPT_STR,
    }),
    "qualification": obj(["lead_id", "strategy", "value", "priority", "status", "crm"], {
        "lead_id": NONEMPTY, "strategy": STR, "value": {"type": "number"},
        "priority": PRIORITY, "status": {"enum": ["qualified", "nurture"]},
        "crm": {"enum": ["updated", "held_back", "failed"]}, "crm_error": OPT_STR,
    }),
    "booking": obj(["action", "lead_id"], {
        "action": {"enum": ["booked", "nurture", "conflict", "duplicate"]},
        "lead_id": NONEMPTY, "booking_id": OPT_STR, "start": OPT_STR,
        "source": {"enum": ["auto", "webhook", None]},
        "conflicting_booking_id": OPT_STR,
    }),
    "proposal": obj(["proposal_id", "lead_id", "subtotal", "items", "fallback_used"], {
        "proposal_id": NONEMPTY, "lead_id": NONEMPTY, "subtotal": MONEY,
        "items": {"type": "integer", "minimum": 1}, "fallback_used": {"type": "boolean"},
        "llm_error": OPT_STR, "lead_from": {"enum": ["payload", "crm"]},
    }),
    "kickoff": obj(["project_id", "lead_id", "deal_id", "tasks"], {
        "project_id": NONEMPTY, "lead_id": NONEMPTY, "deal_id": NONEMPTY,
        "tasks": {"type": "integer", "minimum": 1}, "replaced": {"type": "boolean"},
    }),
    "pricing": obj(["decision", "deal_id", "total", "discount_pct", "rules", "reasons"], {
        "decision": {"enum": ["approved", "review"]}, "deal_id": NONEMPTY,
        "total": MONEY, "discount_pct": {"type": "number"}, "rules": STRINGS,
        "reasons": STRINGS,
    }),
    "invoicing": obj(["invoice_no", "deal_id", "total", "issued_on", "due_on"], {
        "invoice_no": STR, "deal_id": NONEMPTY, "total": MONEY, "tax": MONEY,
        "issued_on": DATE, "due_on": DATE, "sequence": {"type": "integer", "minimum": 1},
    }),
    "forecast": obj(["changed_lead_id", "stage", "applied", "weighted_revenue"], {
        "changed_lead_id": NONEMPTY, "stage": STR, "amount": {"type": "number"},
        "previous_stage": OPT_STR, "applied": {"type": "boolean"},
        "weighted_revenue": {"type": "number"},
    }),
}

# layer → (inputs, events)
LAYERS = {
    "intake": (["lead.received"], ["lead.accepted", "lead.rejected"]),
    "enrichment": (["lead.accepted"], ["lead.enriched"]),
    "qualification": (["lead.enriched"], ["lead.qualified"]),
    "booking": (["lead.qualified", "booking.received"],
                ["meeting.booked", "lead.nurture", "booking.conflict"]),
    "proposal": (["meeting.booked"], ["proposal.drafted"]),
    "kickoff": (["deal.approved"], ["project.created"]),
    "pricing": (["proposal.drafted"], ["deal.approved", "deal.review"]),
    "invoicing": (["deal.approved"], ["invoice.issued"]),
    "forecast": (["proposal.drafted", "invoice.issued"], ["forecast.updated"]),
}


def file_name(topic):
    return topic.replace(".", "-") + ".json"


def write(path, schema):
    doc = {"$schema": DRAFT}
    doc.update(schema)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main():
    for layer, (inputs, events) in LAYERS.items():
        d = os.path.join(HERE, layer, "schemas")
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            os.remove(os.path.join(d, old))
        write(os.path.join(d, "output.json"), OUTPUTS[layer])
        for topic in inputs + events:
            write(os.path.join(d, file_name(topic)), TOPICS[topic])


if __name__ == "__main__":
    main()
