"""A version's verdicts on its optimised variants (int8, ...), verified at registration.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # versions registered before variants existed were verified for none: they serve fp32
    op.add_column(
        "model_versions",
        sa.Column("variants", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as versions:
        versions.drop_column("variants")
