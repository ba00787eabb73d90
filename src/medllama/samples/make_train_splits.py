"""Write the bundled training splits for task-specific tuning, each in its dataset's release layout (seeded).

    python src/medllama/samples/make_train_splits.py      (make_samples.py also runs it)

Synthetic items written for medllama-ops from the fact tables of make_samples.py; genes, studies and
patients are invented. Outputs under train/:
  pubmedqa/pqal_fold0/train_set.json                    PQA-L split script's training fold (ori_pqal.json format)
  medqa/US/4_options/phrases_no_exclude_train.jsonl     MedQA training file
  medmcqa/train.json                                     MedMCQA training file (JSONL, cop 1-based)
  hoc/text/, hoc/labels/, hoc/train_pmid.tsv             HoC release tree with BLURB's training split file
  ddi2013/Train/{DrugBank,MedLine}/*.xml                 DDI corpus training XML
  mtsample/train.csv                                     mtsamples.csv columns (the release has no split)
  bionli/train.csv                                       BioNLI training CSV
"""

from __future__ import annotations

import csv
import io
import json
import random
from xml.sax.saxutils import quoteattr

from make_samples import CONDITIONS, DRUGS, GENES, HERE, SEED, cap, medqa_parts, pick, pubmedqa_parts, write_jsonl

TRAIN_SEED = SEED + 14  # its own stream: the corpus and instruction files keep their bytes
OUT = HERE / "train"


def pubmedqa(rng: random.Random, n: int = 60) -> dict:
    out = {}
    for i in range(n):
        context, question, answer = pubmedqa_parts(rng)
        out[str(98_000_000 + i)] = {
            "QUESTION": question, "CONTEXTS": [context], "LABELS": ["RESULTS"], "MESHES": [], "YEAR": "2015",
            "reasoning_required_pred": answer, "reasoning_free_pred": answer, "final_decision": answer,
            "LONG_ANSWER": "The trial result above answers the question."}
    return out


def medqa(rng: random.Random, n: int = 60) -> list[dict]:
    out = []
    for _ in range(n):
        q, options, right = medqa_parts(rng)
        letters = "ABCD"
        out.append({"question": q, "answer": options[right], "options": dict(zip(letters, options)),
                    "meta_info": "step1", "answer_idx": letters[right], "metamap_phrases": []})
    return out


def medmcqa(rng: random.Random, n: int = 40) -> list[dict]:
    out = []
    classes = sorted({k for k, _ in DRUGS.values()})
    for i in range(n):
        drug = pick(rng, sorted(DRUGS))
        right = DRUGS[drug][0]
        options = pick(rng, [c for c in classes if c != right], 3) + [right]
        rng.shuffle(options)
        out.append({"question": f"{cap(drug)} belongs to which class of drugs?", "exp": f"{cap(drug)} is a {right}.",
                    "cop": options.index(right) + 1, **dict(zip(("opa", "opb", "opc", "opd"), options)),
                    "subject_name": "Pharmacology", "topic_name": "Drug classes",
                    "id": f"00000000-0000-7a1e-0000-{i:012d}", "choice_type": "single"})
    return out


HALLMARK_SENTENCES = {
    "Sustaining proliferative signaling": "Growth factor receptors on the {cell} kept dividing signals switched on.",
    "Inducing angiogenesis": "The {cell} secreted factors that recruited new blood vessels into the tumour.",
    "Resisting cell death": "Loss of {gene} let the {cell} survive signals that normally trigger apoptosis.",
    "Activating invasion and metastasis": "The {cell} invaded the surrounding tissue and seeded distant metastases.",
    "Genomic instability and mutation": "Defective DNA repair in the {cell} produced many new mutations.",
    "Tumor promoting inflammation": "Inflammatory cells around the {cell} released cytokines that fed tumour growth.",
    "Avoiding immune destruction": "The {cell} escaped immune destruction by silencing antigen presentation.",
    "Cellular energetics": "The {cell} switched their energetics towards aerobic glycolysis.",
}


def hoc(rng: random.Random, n: int = 20) -> dict[str, tuple[str, str]]:
    """PMID file name -> (text, labels): one sentence a line, each sentence's labels after '<'."""
    cells = ["breast cancer cells", "glioma cells", "colon cancer cells", "melanoma cells", "lung cancer cells"]
    out = {}
    for i in range(n):
        chosen = pick(rng, sorted(HALLMARK_SENTENCES), rng.randint(1, 2))
        sentences = [f"We studied how {pick(rng, GENES)} shapes tumour behaviour in {pick(rng, cells)}."]
        fields = ["NULL"]
        for hallmark in chosen:
            sentences.append(HALLMARK_SENTENCES[hallmark].format(cell=pick(rng, cells), gene=pick(rng, GENES)))
            fields.append(hallmark)
        out[f"{98_100_000 + i}.txt"] = ("\n".join(sentences) + "\n", " ".join(f"<{f}" for f in fields) + " ")
    return out


DDI_TEMPLATES = {
    "mechanism": "{a} raised the plasma concentration of {b} by inhibiting its metabolism.",
    "effect": "Giving {a} with {b} increased the risk of {effect}.",
    "advise": "{a} should not be combined with {b} in patients with kidney disease.",
    "int": "An interaction between {a} and {b} has been reported.",
    "none": "{a} and {b} were both given during the study period.",
}


def ddi_document(rng: random.Random, doc_id: str, n: int) -> str:
    drugs = sorted(DRUGS)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<document id="{doc_id}">']
    for s in range(n):
        label = pick(rng, sorted(DDI_TEMPLATES))
        a, b = pick(rng, drugs, 2)
        text = DDI_TEMPLATES[label].format(a=cap(a), b=b, effect=DRUGS[b][1])
        sid = f"{doc_id}.s{s}"
        lines.append(f"    <sentence id={quoteattr(sid)} text={quoteattr(text)}>")
        for k, name in enumerate((cap(a), b)):
            start = text.index(name)
            lines.append(f'        <entity id="{sid}.e{k}" charOffset="{start}-{start + len(name) - 1}" type="drug" '
                         f'text={quoteattr(name)}/>')
        ddi = "false" if label == "none" else "true"
        kind = "" if label == "none" else f' type="{label}"'
        lines.append(f'        <pair id="{sid}.p0" e1="{sid}.e0" e2="{sid}.e1" ddi="{ddi}"{kind}/>')
        lines.append("    </sentence>")
    return "\n".join(lines + ["</document>", ""])


MTSAMPLE_REPORTS = {
    "Cardiovascular / Pulmonary": "SUBJECTIVE: {who} reports {symptom}. ASSESSMENT: {condition}. PLAN: Echocardiogram and follow-up in cardiology clinic.",
    "Orthopedic": "PROCEDURE: Arthroscopy of the right knee for a meniscal tear in {who}. FINDINGS: Torn medial meniscus, trimmed.",
    "Neurology": "HISTORY: {who} has {symptom}. EXAM: Cranial nerves intact. IMPRESSION: Possible migraine; MRI of the brain ordered.",
    "Gastroenterology": "PROCEDURE: Colonoscopy in {who}. FINDINGS: Two small polyps removed. PLAN: Repeat colonoscopy in five years.",
    "Dermatology": "SUBJECTIVE: {who} has an itchy rash on both elbows. ASSESSMENT: Psoriasis. PLAN: Topical clobetasol.",
    "Urology": "HISTORY: {who} has urinary frequency and a weak stream. ASSESSMENT: Benign prostatic hyperplasia. PLAN: Tamsulosin.",
}


def mtsample(rng: random.Random, n: int = 30) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["", "description", "medical_specialty", "sample_name", "transcription", "keywords"])
    for i in range(n):
        specialty = sorted(MTSAMPLE_REPORTS)[i % len(MTSAMPLE_REPORTS)]
        c = pick(rng, CONDITIONS)
        who = f"a {rng.randint(25, 85)}-year-old {pick(rng, ['man', 'woman'])}"
        text = MTSAMPLE_REPORTS[specialty].format(who=who, symptom=pick(rng, c.symptoms), condition=cap(c.name))
        writer.writerow([1000 + i, f" {specialty.split(' ')[0]} note.", f" {specialty}", f" Sample {1000 + i} ",
                         text, specialty.lower()])
    return buf.getvalue()


def bionli(rng: random.Random, n: int = 24) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["pmid", "supp_set", "conclusion", "label_cat"])
    for i in range(n // 2):
        gene, process = f"Qz{rng.randint(10, 99)}", pick(rng, ["insulin secretion", "bone loss", "fibrosis", "angiogenesis"])
        up, down = ("raises", "lowers") if rng.random() < 0.5 else ("lowers", "raises")
        premise = (f"Mice lacking gene {gene} showed {'less' if up == 'raises' else 'more'} {process}. "
                   f"Restoring {gene} returned {process} to normal.")
        writer.writerow([98_200_000 + i, premise, f"{gene} {up} {process}.", "pos"])
        writer.writerow([98_200_000 + i, premise, f"{gene} {down} {process}.", "neg"])
    return buf.getvalue()


def write_text(rel: str, text: str) -> None:
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_train_splits() -> None:
    rng = random.Random(TRAIN_SEED)
    write_text("pubmedqa/pqal_fold0/train_set.json", json.dumps(pubmedqa(rng), indent=1) + "\n")
    write_jsonl(OUT / "medqa/US/4_options/phrases_no_exclude_train.jsonl", medqa(rng))
    write_jsonl(OUT / "medmcqa/train.json", medmcqa(rng))
    docs = hoc(rng)
    for name, (text, labels) in docs.items():
        write_text(f"hoc/text/{name}", text)
        write_text(f"hoc/labels/{name}", labels)
    write_text("hoc/train_pmid.tsv", ",".join(docs) + "\n")
    for k, corpus in enumerate(("DrugBank", "DrugBank", "MedLine")):
        doc_id = f"DDI-{corpus}.d{800 + k}"
        write_text(f"ddi2013/Train/{corpus}/{doc_id}.xml", ddi_document(rng, doc_id, 8))
    write_text("mtsample/train.csv", mtsample(rng))
    write_text("bionli/train.csv", bionli(rng))
    print(f"training splits written under {OUT}")


if __name__ == "__main__":
    write_train_splits()
