"""Where the nbgrader gradebook lives: sqlite in the course folder, or a PostgreSQL server.

One setting switches it, read by nbgrader_config.py (for every nbgrader command) and by the
grading tools:

    export NBGRADER_DB_URL=postgresql+psycopg://autograder@dbhost:5432/gradebook

Without it the gradebook is `gradebook.db` (sqlite) in the course folder: right for one machine,
wrong for a cluster, where many grading processes on many nodes write at once and sqlite on a
network file system fails with "database is locked". Keep the password out of the URL (it would
reach every process's environment): PostgreSQL's client reads it from ~/.pgpass or PGPASSFILE.
"""

import os
from pathlib import Path

DB_URL_VARIABLE = "NBGRADER_DB_URL"


def db_url(course_root):
    """The gradebook's SQLAlchemy URL: NBGRADER_DB_URL, or sqlite in the course folder."""
    url = os.environ.get(DB_URL_VARIABLE, "").strip()
    if url and not url.startswith(("sqlite:", "postgresql:", "postgresql+")):
        raise SystemExit(f"{DB_URL_VARIABLE}={url!r} is not a gradebook URL: use "
                         "postgresql+psycopg://USER@HOST:PORT/DATABASE, or unset it for sqlite.")
    return url or f"sqlite:///{Path(course_root) / 'gradebook.db'}"


def is_shared_server(url):
    """True for a database server that processes on many machines can write at once."""
    return url.startswith("postgresql")
