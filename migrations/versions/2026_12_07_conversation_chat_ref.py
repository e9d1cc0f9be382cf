"""conversation.chat_ref

Workflow ids, inputs and signals name a chat by a keyed hash instead of its Telegram id;
this column maps the hash back to the chat, for ops reading a workflow id in the UI.
Filled by the ingest as conversations see messages (the key is not in the database, so
older rows cannot be filled here).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversation", sa.Column("chat_ref", sa.Text()))
    op.create_index("ix_conversation_chat_ref", "conversation", ["account_id", "chat_ref"])


def downgrade() -> None:
    op.drop_index("ix_conversation_chat_ref", "conversation")
    op.drop_column("conversation", "chat_ref")
