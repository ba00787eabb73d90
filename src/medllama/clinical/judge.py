"""Top-k diagnosis accuracy of saved clinical-case predictions, matched exactly or by a judge model.

Reads the {"id", "prediction", "reference"} lines `medllama evaluate --output` writes for clinical-cases
(`<stem>.predictions/clinical-cases.jsonl`: the ranked differential and the accepted names). A listed
diagnosis equal to the gold one or a synonym after normalisation matches without asking anyone; with a judge
(a local HF causal LM) every other diagnosis of the top max(k) is put to it as a yes/no question, answered
by comparing the log-likelihoods of "yes" and "no" (deterministic). Each case's record keeps, per
diagnosis, who decided, the judge's prompt, both scores and the verdict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medllama import storage
from medllama.evaluate.metrics import answer_lines
from medllama.evaluate.tasks.clinical_cases import KS, Matcher, topk_from_ranks

log = logging.getLogger(__name__)

JUDGE_INSTRUCTION = ("You are checking a differential diagnosis. Do the reference diagnosis and the candidate "
                     "diagnosis name the same condition? Answer yes or no.")
EXACT = Matcher("synonym")  # normalised text equal to the diagnosis or one of its synonyms


@dataclass
class Verdict:
    rank: int  # 1-based position in the model's differential
    candidate: str
    match: bool
    by: str  # "exact" (normalised text) or "judge"
    prompt: str | None = None  # what the judge was asked
    scores: dict[str, float] | None = None  # the judge's log-likelihood of "yes" and of "no"


@dataclass
class CaseVerdicts:
    id: str
    accepted: list[str]  # the gold diagnosis, then its synonyms
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def first_match(self) -> int | None:
        return next((v.rank for v in self.verdicts if v.match), None)


def judge_prompt(candidate: str, accepted: Sequence[str], template: str) -> str:
    also = f" (also called: {'; '.join(accepted[1:])})" if len(accepted) > 1 else ""
    return template.format(instruction=JUDGE_INSTRUCTION,
                           input=f"Reference diagnosis: {accepted[0]}{also}\nCandidate diagnosis: {candidate}")


def read_predictions(path: str | Path) -> list[tuple[str, list[str], list[str]]]:
    """(id, ranked diagnoses, accepted names) per line; a bad line fails with its number."""
    rows = []
    with open(storage.fetch(str(path)), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                ranked, accepted = (v if isinstance(v, list) else answer_lines(v)
                                    for v in (r["prediction"] or [], r["reference"]))
                rows.append((str(r.get("id", n)), [str(x) for x in ranked], [str(x) for x in accepted]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: {e!r}; expected {{\"id\", \"prediction\", \"reference\"}} "
                                 f"(the clinical-cases predictions file of `medllama evaluate --output`)") from None
            if not accepted:
                raise ValueError(f"{path}:{n}: no accepted diagnosis in the reference")
    return rows


def judge_cases(predictions: str | Path, judge: str | None = None, ks: Sequence[int] = KS,
                output: str | Path | None = None, batch_size: int = 8) -> tuple[dict[str, float], list[CaseVerdicts]]:
    """top<k>_accuracy for each k and every case's verdicts; written to `output`/ (metrics.json, verdicts.jsonl)."""
    from medllama.evaluate.run import DEFAULT_TEMPLATE

    depth = max(ks)
    cases, asked = [], []
    for case_id, ranked, accepted in read_predictions(predictions):
        case = CaseVerdicts(case_id, accepted)
        for rank, cand in enumerate(ranked[:depth], 1):
            exact = EXACT(cand, accepted)
            case.verdicts.append(Verdict(rank, cand, exact, "exact"))
            if judge and not exact:
                case.verdicts[-1].by, case.verdicts[-1].prompt = "judge", judge_prompt(cand, accepted, DEFAULT_TEMPLATE)
                asked.append(case.verdicts[-1])
        cases.append(case)
    if asked:
        _ask(judge, asked, batch_size)
    metrics = {**topk_from_ranks([c.first_match for c in cases], ks), "cases": float(len(cases)),
               "judged": float(len(asked))}
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        storage.write_json_atomic(out / "metrics.json", {"metrics": metrics, "judge": judge, "ks": list(ks)})
        with open(out / "verdicts.jsonl", "w", encoding="utf-8") as f:
            for c in cases:
                f.write(json.dumps({**asdict(c), "first_match": c.first_match}, ensure_ascii=False) + "\n")
    return metrics, cases


def _ask(judge: str, verdicts: list[Verdict], batch_size: int) -> None:
    """The judge's yes/no for each verdict's prompt, by log-likelihood (ties say no)."""
    from medllama.evaluate.scoring import encode_continuation, encode_prompt, fit, load_model, loglikelihoods

    lm = load_model(storage.fetch(judge))
    answers = [encode_continuation(lm, "yes"), encode_continuation(lm, "no")]
    requests = [(fit(encode_prompt(lm, v.prompt), lm.max_len - max(map(len, answers))), answers) for v in verdicts]
    for v, (yes, no) in zip(verdicts, loglikelihoods(lm, requests, batch_size=batch_size)):
        v.scores, v.match = {"yes": yes, "no": no}, yes > no
    log.info("judge %s: %d of %d diagnoses named the gold one", judge, sum(v.match for v in verdicts), len(verdicts))
