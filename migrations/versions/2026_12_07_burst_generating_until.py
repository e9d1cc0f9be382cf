"""burst.generating_until

Temporal delivers an activity at least once: around a server restart two attempts of
generate_reply can run at the same time, and each paid the LLM. The attempt calling the
LLM now claims the burst until this time (renewed while the call runs); another attempt
waits for its reply, or for the claim to lapse if its worker died.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("burst", sa.Column("generating_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("burst", "generating_until")
