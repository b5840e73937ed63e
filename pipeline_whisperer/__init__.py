"""Pipeline Whisperer: the project package and its cross-cutting infrastructure."""
