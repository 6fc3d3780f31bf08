"""API keys, the tenant that owns each file and job, and a job's attempt count.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
# Files and jobs made before tenants existed belong to the tenant of the open mode.
_DEFAULT_TENANT = "default"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("revoked_at", _UTC, nullable=True),
    )
    for table in ("files", "jobs"):
        op.add_column(
            table,
            sa.Column("owner", sa.String(64), nullable=False, server_default=_DEFAULT_TENANT),
        )
    op.add_column("jobs", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_files_owner", "files", ["owner", "seq"])
    op.create_index("ix_jobs_owner_status", "jobs", ["owner", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_status", "jobs")
    op.drop_index("ix_files_owner", "files")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("attempts")
        jobs.drop_column("owner")
    with op.batch_alter_table("files") as files:
        files.drop_column("owner")
    op.drop_table("api_keys")
