"""The pipeline's topics: what the services emit to and the stages consume from.

A module of its own at the bottom of `leads`, so services can name a topic without importing
the pipeline that carries it.
"""

LEADS_RAW = "leads.raw"
LEADS_SCORED = "leads.scored"
OUTREACH_EVENTS = "outreach.events"
TOPICS = (LEADS_RAW, LEADS_SCORED, OUTREACH_EVENTS)


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
