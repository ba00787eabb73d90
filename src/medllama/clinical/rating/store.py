"""Reads and writes of the rating tables: import cases with blinded differentials, assign them, store ratings,
export them, and compute agreement and per-model summaries from them."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from medllama.clinical.agreement import Agreement, agreement
from medllama.clinical.rating.tables import Assignment, Differential, Rating, RatingCase
from medllama.recipe import RatingSpec

EXPORT_COLUMNS = ("case_id", "model", "label", "rater", "criterion", "value", "rated_at")


class RatingError(ValueError):
    """A request the ratings cannot take (unknown case, value out of range...); the message says which."""


class NotAssigned(PermissionError):
    """A rater asked for a case nobody assigned to them."""


ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CaseIn(BaseModel):
    """A case as the clinical-cases task reads it (cases.jsonl): id, description, diagnosis, synonyms."""

    id: str = Field(..., min_length=1, max_length=128)
    case: str = Field(..., min_length=1)
    diagnosis: str = Field(..., min_length=1)
    synonyms: list[str] = Field(default_factory=list)


class CasesIn(BaseModel):
    cases: list[CaseIn] = Field(..., min_length=1)
    differentials: dict[ModelName, dict[str, list[str]]] = Field(
        ..., min_length=1, description="model name -> case id -> ranked diagnoses (what `medllama evaluate` generated)")


def payload_from_predictions(cases: str, predictions: dict[str, str]) -> CasesIn:
    """The admin import body: the cases some model answered, and each model's clinical-cases predictions
    (`medllama evaluate --output` writes them to `<stem>.predictions/clinical-cases.jsonl`)."""
    import json

    from medllama import storage
    from medllama.clinical.judge import read_predictions

    with open(storage.fetch(cases), encoding="utf-8") as f:
        rows = [CaseIn.model_validate(json.loads(line)) for line in f if line.strip()]
    differentials = {model: {case_id: ranked for case_id, ranked, _ in read_predictions(path)}
                     for model, path in predictions.items()}
    answered = [r for r in rows if any(r.id in by_case for by_case in differentials.values())]
    return CasesIn(cases=answered, differentials=differentials)


class AssignmentIn(BaseModel):
    rater: str = Field(..., min_length=3, max_length=320, description="the rater's e-mail: the owner of their API key")
    case_ids: list[str] = Field(..., min_length=1)


@dataclass
class CaseView:
    case_id: str
    text: str
    accepted: list[str]
    differentials: list[tuple[str, list[str]]]  # (blind label, top-k diagnoses), in label order
    ratings: dict[str, int]  # "<label>.<criterion>" -> this rater's value


class RatingStore:
    def __init__(self, engine: Engine, spec: RatingSpec) -> None:
        self.session = sessionmaker(engine, expire_on_commit=False)
        self.spec = spec
        self.criteria = {c.name: c for c in spec.criteria}

    def import_cases(self, payload: CasesIn, now: datetime) -> int:
        """Store the cases and every model's differential, labelled A, B, ... in a seeded shuffle per case."""
        try:
            with self.session.begin() as s:
                for case in payload.cases:
                    row = RatingCase(case_id=case.id, text=case.case, accepted=[case.diagnosis, *case.synonyms],
                                     created_at=now)
                    s.add(row)
                    s.flush()
                    models = sorted(m for m, by_case in payload.differentials.items() if case.id in by_case)
                    if not models:
                        raise RatingError(f"case {case.id}: no model's differential for it")
                    random.Random(f"{self.spec.seed}:{case.id}").shuffle(models)
                    for label, model in zip(_labels(len(models)), models):
                        s.add(Differential(case_pk=row.id, model=model, label=label,
                                           diagnoses=payload.differentials[model][case.id]))
        except IntegrityError:
            raise RatingError("a case with one of these ids is already imported; nothing was imported") from None
        return len(payload.cases)

    def assign(self, payload: AssignmentIn, by: str, now: datetime) -> int:
        """Assign cases to a rater; returns how many were new (assigning twice changes nothing)."""
        with self.session.begin() as s:
            cases = dict(s.execute(select(RatingCase.case_id, RatingCase.id)
                                   .where(RatingCase.case_id.in_(payload.case_ids))).all())
            missing = sorted(set(payload.case_ids) - set(cases))
            if missing:
                raise RatingError(f"unknown case ids {missing}; import them first")
            have = set(s.scalars(select(Assignment.case_pk).where(Assignment.rater == payload.rater)))
            new = [pk for pk in dict.fromkeys(cases[c] for c in payload.case_ids) if pk not in have]
            s.add_all(Assignment(case_pk=pk, rater=payload.rater, assigned_at=now, assigned_by=by) for pk in new)
        return len(new)

    def assigned(self, rater: str) -> list[tuple[str, bool]]:
        """(case id, fully rated) for each case assigned to `rater`, in assignment order."""
        with self.session() as s:
            rows = s.execute(select(RatingCase.id, RatingCase.case_id).join(Assignment, Assignment.case_pk == RatingCase.id)
                             .where(Assignment.rater == rater).order_by(Assignment.id)).all()
            return [(case_id, self._done(s, pk, rater)) for pk, case_id in rows]

    def _done(self, s, case_pk: int, rater: str) -> bool:
        diffs = s.scalars(select(Differential.id).where(Differential.case_pk == case_pk)).all()
        n = s.scalars(select(Rating.id).where(Rating.rater == rater, Rating.differential_pk.in_(diffs))).all()
        return len(n) == len(diffs) * len(self.criteria)

    def case_for(self, rater: str, case_id: str) -> CaseView:
        with self.session() as s:
            case = s.scalar(select(RatingCase).join(Assignment, Assignment.case_pk == RatingCase.id)
                            .where(RatingCase.case_id == case_id, Assignment.rater == rater))
            if case is None:
                raise NotAssigned(f"case {case_id!r} is not assigned to you")
            diffs = s.scalars(select(Differential).where(Differential.case_pk == case.id).order_by(Differential.label)).all()
            by_pk = {d.id: d.label for d in diffs}
            ratings = s.scalars(select(Rating).where(Rating.rater == rater, Rating.differential_pk.in_(by_pk))).all()
            return CaseView(case.case_id, case.text, case.accepted,
                            [(d.label, d.diagnoses[: self.spec.top_k]) for d in diffs],
                            {f"{by_pk[r.differential_pk]}.{r.criterion}": r.value for r in ratings})

    def rate(self, rater: str, case_id: str, form: dict[str, str], now: datetime) -> None:
        """Store one rater's answers for a case: every criterion for every differential, each within its scale."""
        view = self.case_for(rater, case_id)
        values = {}
        for label, _ in view.differentials:
            for name, c in self.criteria.items():
                raw = form.get(f"{label}.{name}", "").strip()
                if not raw.lstrip("-").isdigit() or not c.low <= int(raw) <= c.high:
                    raise RatingError(f"differential {label}: answer “{c.question}” ({c.low}–{c.high})")
                values[(label, name)] = int(raw)
        with self.session.begin() as s:
            diffs = {d.label: d.id for d in s.scalars(
                select(Differential).join(RatingCase).where(RatingCase.case_id == case_id))}
            for (label, name), value in values.items():
                key = dict(differential_pk=diffs[label], rater=rater, criterion=name)
                row = s.scalar(select(Rating).filter_by(**key))
                if row is None:
                    s.add(Rating(**key, value=value, rated_at=now))
                else:
                    row.value, row.rated_at = value, now

    def rows(self) -> list[tuple]:
        """Every rating, unblinded (the export and the report are for the study's admin)."""
        with self.session() as s:
            return s.execute(select(RatingCase.case_id, Differential.model, Differential.label, Rating.rater,
                                    Rating.criterion, Rating.value, Rating.rated_at)
                             .join(Differential, Rating.differential_pk == Differential.id)
                             .join(RatingCase, Differential.case_pk == RatingCase.id)
                             .order_by(RatingCase.case_id, Differential.label, Rating.rater, Rating.criterion)).all()

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        writer.writerows((*r[:6], r[6].isoformat(timespec="seconds")) for r in self.rows())
        return buf.getvalue()

    def agreement(self) -> list[Agreement]:
        """Per criterion, agreement between raters; an item is one model's differential for one case."""
        rows = self.rows()
        return [agreement(c.name, "nominal" if c.scale == "yes_no" else "ordinal",
                          [(f"{r[0]}/{r[2]}", r[3], r[5]) for r in rows if r[4] == c.name]) for c in self.spec.criteria]

    def by_model(self) -> dict[str, dict[str, tuple[float, int]]]:
        """model -> criterion -> (mean rating, number of ratings)."""
        acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for case_id, model, label, rater, criterion, value, _ in self.rows():
            acc[model][criterion].append(value)
        return {m: {c: (sum(v) / len(v), len(v)) for c, v in cs.items()} for m, cs in sorted(acc.items())}


def _labels(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"M{i + 1}" for i in range(n)]
