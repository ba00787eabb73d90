"""Alembic environment: runs on the connection `medllama.gate.repository.migrate` hands over (no alembic.ini needed)."""

from alembic import context

import medllama.clinical.rating.tables  # noqa: F401 - the rating pages' tables live in this database and history
from medllama.gate.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
