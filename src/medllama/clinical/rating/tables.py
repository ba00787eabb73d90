"""The rating tables, on the gate's SQLAlchemy base (one database, one migration history: 0003_ratings)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medllama.gate.db import Base


class RatingCase(Base):
    __tablename__ = "rating_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(128), unique=True)
    text: Mapped[str] = mapped_column(Text)
    accepted: Mapped[list] = mapped_column(JSON)  # the gold diagnosis, then its synonyms (shown to raters)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Differential(Base):
    """One model's ranked diagnoses for a case; raters see only its blind label."""

    __tablename__ = "rating_differentials"
    __table_args__ = (UniqueConstraint("case_pk", "model"), UniqueConstraint("case_pk", "label"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("rating_cases.id"), index=True)
    model: Mapped[str] = mapped_column(String(256))  # never shown on a rater's page
    label: Mapped[str] = mapped_column(String(8))  # "A", "B", ... in a seeded per-case shuffle
    diagnoses: Mapped[list] = mapped_column(JSON)


class Assignment(Base):
    __tablename__ = "rating_assignments"
    __table_args__ = (UniqueConstraint("case_pk", "rater"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_pk: Mapped[int] = mapped_column(ForeignKey("rating_cases.id"), index=True)
    rater: Mapped[str] = mapped_column(String(320), index=True)  # the owner of the rater's gate API key
    assigned_at: Mapped[datetime] = mapped_column(DateTime)
    assigned_by: Mapped[str] = mapped_column(String(64))


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("differential_pk", "rater", "criterion"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    differential_pk: Mapped[int] = mapped_column(ForeignKey("rating_differentials.id"), index=True)
    rater: Mapped[str] = mapped_column(String(320), index=True)
    criterion: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime] = mapped_column(DateTime)
