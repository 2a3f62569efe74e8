"""Alembic schema migrations of the cloud database (driven programmatically by :mod:`cloud.db`).

``env.py`` and ``script.py.mako`` are Alembic's environment and revision template; ``versions/``
holds the revisions. There is no ``alembic.ini``: :func:`cloud.db.alembic_config` builds the
configuration, so nothing depends on the current directory. See ``docs/database.md``.
"""
