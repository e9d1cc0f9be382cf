"""message.command and burst.command: a command's name, parsed once at the channel

The channel that receives a message parses its command (workflows/commands.py); the name
travels in the signal, the burst input and these columns, so nothing parses stored text
again. Rows from before are backfilled from their text: a message recorded as a command,
and a command burst of one such message.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# workflows/commands.py's pattern: "/name", optionally "@botname", then a space or the end.
NAME = r"lower(substring(btrim(text) from '^/([A-Za-z0-9_]{1,32})(@[A-Za-z0-9_]{1,64})?(\s|$)'))"


def upgrade() -> None:
    op.add_column("message", sa.Column("command", sa.Text()))
    op.add_column("burst", sa.Column("command", sa.Text()))
    op.execute(f"update message set command = {NAME} where kind = 'command'")
    op.execute(
        "update burst b set command = m.command from message m"
        " where b.reason = 'command' and cardinality(b.message_ids) = 1"
        " and m.burst_id = b.id and m.command is not null"
    )


def downgrade() -> None:
    op.drop_column("burst", "command")
    op.drop_column("message", "command")
