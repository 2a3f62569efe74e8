"""The revisions (Alembic loads them by path; this file only makes them a package for mypy)."""
