"""Human rating of clinical-case differentials (medllama.clinical.rating): cases, blinded differentials,
assignments of cases to raters, ratings.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rating_cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.String(128), nullable=False, unique=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("accepted", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "rating_differentials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_pk", sa.Integer(), sa.ForeignKey("rating_cases.id"), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("diagnoses", sa.JSON(), nullable=False),
        sa.UniqueConstraint("case_pk", "model"),
        sa.UniqueConstraint("case_pk", "label"),
    )
    op.create_index("ix_rating_differentials_case_pk", "rating_differentials", ["case_pk"])
    op.create_table(
        "rating_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_pk", sa.Integer(), sa.ForeignKey("rating_cases.id"), nullable=False),
        sa.Column("rater", sa.String(320), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("case_pk", "rater"),
    )
    op.create_index("ix_rating_assignments_case_pk", "rating_assignments", ["case_pk"])
    op.create_index("ix_rating_assignments_rater", "rating_assignments", ["rater"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("differential_pk", sa.Integer(), sa.ForeignKey("rating_differentials.id"), nullable=False),
        sa.Column("rater", sa.String(320), nullable=False),
        sa.Column("criterion", sa.String(64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("differential_pk", "rater", "criterion"),
    )
    op.create_index("ix_ratings_differential_pk", "ratings", ["differential_pk"])
    op.create_index("ix_ratings_rater", "ratings", ["rater"])


def downgrade() -> None:
    for table in ("ratings", "rating_assignments", "rating_differentials", "rating_cases"):
        op.drop_table(table)
