"""Scoring a lead: the rule scorer (`rules`), the model scorer (`model`), the types both speak
(`types`) and the factory that picks one from the settings (`factory`).

Import from the modules themselves; this package re-exports nothing, so importing the rules
never pulls in the model scorer's client library.
"""
