"""no phone numbers in the entity cache

Telethon caches users' phone numbers with their access hashes; Lull needs the hashes
only. A read of a backup must not yield the users' numbers, so the stored ones are
erased (the listener no longer writes them). Auth keys are sealed from the next save on
(db/sealed.py); an unsealed one still loads and is sealed when saved.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("update telegram_entity set phone = null where phone is not null")


def downgrade() -> None:
    # Erased numbers cannot come back; the column is unchanged, so nothing to undo.
    pass
