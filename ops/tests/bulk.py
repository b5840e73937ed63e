"""Big data sets in SQL, free of Django imports so the benchmark can use them before set-up."""

# PostgreSQL: inserts as many plain leads as its one parameter says, with generate_series (no ORM).
LEADS_INSERT_SQL = (
    "INSERT INTO leads_lead (lightfield_id, status, company_name, company_website, company_industry,"
    " company_size, company_description, contact_name, contact_email, contact_title, contact_linkedin,"
    " source_channel, source_campaign, source_referrer, tech_stack, pain_points, budget_range, timeline,"
    " raw_payload, persona, scoring_model, scoring_reasons, failure_reason, status_before_snooze,"
    " outreach_count, engagement_count, created_at, updated_at)"
    " SELECT 'bulk-' || g, 'raw', 'Company ' || g, 'https://example.com/' || g, 'Software', '51-200',"
    " repeat(md5(g::text), 4), 'Contact ' || g, 'c' || g || '@example.com', 'CTO', '', 'web', 'spring', '',"
    " '[\"python\", \"postgres\"]', '[\"slow replies\"]', '10k-50k', 'Q3',"
    " jsonb_build_object('lightfield_id', 'bulk-' || g), 'unknown', '', '[]', '', '', 0, 0, now(), now()"
    " FROM generate_series(1, %s) AS g"
)
