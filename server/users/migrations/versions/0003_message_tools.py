"""A message's tool data: an answer's `tool_calls` and a tool output's `tool_call_id`, so a
stored /v1/responses chain replays its function calls upstream (issue 25).

Revision ID: 0003_message_tools
Revises: 0002_history
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_message_tools"
down_revision: str | tuple[str, ...] | None = "0002_history"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    # Nullable, no default: every message written before has no tool data, and adding it
    # rewrites no row on either engine.
    op.add_column("messages", sa.Column("tools", sa.Text))


def downgrade() -> None:
    op.drop_column("messages", "tools")
