"""The write side of the domain: every interface (API, admin, stages, commands) calls these."""
