"""Write the bundled sample corpora and instruction set (seeded; rerun to regenerate the same bytes).

    python src/medllama/samples/make_samples.py

All text is synthetic, written from our own templates and a small table of textbook facts; the
clinical notes are entirely fictional (no real patient, date, place or name). Outputs:
  corpus/biomedical.jsonl    abstract-like paragraphs (~300 KB)
  corpus/clinical.jsonl      discharge summaries, progress notes, radiology reports (~60 KB)
  corpus/general.jsonl       encyclopedic and everyday paragraphs (~120 KB)
  instructions/medical_instructions.jsonl   Alpaca records (QA, yes/no/maybe, A-D) + chat records
  train/<task>/...           training splits in each dataset's release layout (make_train_splits.py)
The same facts run through all four, so a tiny model trained on the corpus meets them again in the
instructions.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240219


# ---------------------------------------------------------------- facts (textbook level, paraphrased)
@dataclass(frozen=True)
class Condition:
    name: str
    system: str
    drugs: tuple[str, ...]  # first drug = usual first-line choice
    symptoms: tuple[str, ...]
    test: str  # diagnosis or monitoring
    risks: tuple[str, ...]
    plain: str  # one-line lay explanation


CONDITIONS = [
    Condition("type 2 diabetes mellitus", "endocrine", ("metformin", "empagliflozin", "semaglutide"),
              ("increased thirst", "frequent urination", "fatigue", "blurred vision"), "hemoglobin A1c",
              ("obesity", "physical inactivity", "family history"),
              "the body does not respond well to insulin, so blood sugar stays too high"),
    Condition("essential hypertension", "cardiovascular", ("lisinopril", "amlodipine", "hydrochlorothiazide"),
              ("headache", "no symptoms in most patients"), "repeated blood pressure measurement",
              ("high salt intake", "obesity", "older age"),
              "the pressure of blood against the artery walls stays higher than normal"),
    Condition("heart failure with reduced ejection fraction", "cardiovascular",
              ("sacubitril-valsartan", "carvedilol", "furosemide"),
              ("shortness of breath", "leg swelling", "orthopnea", "fatigue"), "echocardiography",
              ("prior myocardial infarction", "hypertension", "diabetes"),
              "the heart muscle pumps too weakly to meet the body's needs"),
    Condition("community-acquired pneumonia", "respiratory", ("amoxicillin", "azithromycin", "ceftriaxone"),
              ("cough", "fever", "pleuritic chest pain", "shortness of breath"), "chest radiograph",
              ("smoking", "older age", "chronic lung disease"),
              "an infection fills the small air sacs of the lung with fluid"),
    Condition("asthma", "respiratory", ("inhaled budesonide", "albuterol", "montelukast"),
              ("wheezing", "chest tightness", "night-time cough"), "spirometry with bronchodilator testing",
              ("atopy", "allergen exposure", "family history"),
              "the airways narrow and swell in response to triggers"),
    Condition("chronic obstructive pulmonary disease", "respiratory", ("tiotropium", "salmeterol", "inhaled budesonide"),
              ("chronic cough", "sputum production", "exertional dyspnea"), "spirometry",
              ("cigarette smoking", "occupational dust exposure"),
              "long-term damage to the airways makes it hard to breathe out"),
    Condition("atrial fibrillation", "cardiovascular", ("apixaban", "metoprolol", "diltiazem"),
              ("palpitations", "dizziness", "fatigue"), "electrocardiogram",
              ("older age", "hypertension", "alcohol use"),
              "the upper chambers of the heart beat in a fast, irregular way"),
    Condition("chronic kidney disease", "renal", ("lisinopril", "dapagliflozin"),
              ("fatigue", "swelling of the ankles", "no symptoms early on"), "estimated glomerular filtration rate",
              ("diabetes", "hypertension", "older age"),
              "the kidneys slowly lose their ability to filter the blood"),
    Condition("rheumatoid arthritis", "musculoskeletal", ("methotrexate", "adalimumab", "prednisone"),
              ("joint swelling", "morning stiffness", "symmetric hand pain"), "anti-CCP antibody testing",
              ("smoking", "female sex", "family history"),
              "the immune system attacks the lining of the joints"),
    Condition("major depressive disorder", "psychiatric", ("sertraline", "escitalopram", "bupropion"),
              ("low mood", "loss of interest", "poor sleep", "poor concentration"), "PHQ-9 questionnaire",
              ("prior episodes", "chronic illness", "stressful life events"),
              "a persistent low mood and loss of interest affect daily life"),
    Condition("hypothyroidism", "endocrine", ("levothyroxine",),
              ("fatigue", "cold intolerance", "weight gain", "constipation"), "serum TSH",
              ("autoimmune thyroiditis", "female sex", "prior thyroid surgery"),
              "the thyroid gland makes too little thyroid hormone"),
    Condition("iron deficiency anemia", "hematologic", ("ferrous sulfate", "intravenous iron sucrose"),
              ("fatigue", "pallor", "shortness of breath on exertion"), "serum ferritin",
              ("heavy menstrual bleeding", "gastrointestinal blood loss", "low dietary iron"),
              "the body lacks the iron it needs to make enough red blood cells"),
    Condition("migraine", "neurologic", ("sumatriptan", "topiramate", "propranolol"),
              ("throbbing headache", "sensitivity to light", "nausea"), "clinical history",
              ("female sex", "family history", "sleep deprivation"),
              "recurrent headaches, often one-sided, come with nausea or light sensitivity"),
    Condition("gout", "musculoskeletal", ("colchicine", "allopurinol", "naproxen"),
              ("sudden painful swollen joint", "redness over the big toe"), "serum urate and joint fluid analysis",
              ("high purine diet", "alcohol use", "diuretic use"),
              "uric acid crystals collect in a joint and cause painful attacks"),
    Condition("osteoporosis", "musculoskeletal", ("alendronate", "denosumab"),
              ("fragility fractures", "loss of height", "no symptoms before a fracture"), "DXA bone density scan",
              ("older age", "female sex", "long-term steroid use"),
              "the bones become thin and break easily"),
    Condition("Parkinson disease", "neurologic", ("levodopa-carbidopa", "pramipexole"),
              ("resting tremor", "slowness of movement", "muscle rigidity"), "clinical examination",
              ("older age", "male sex"),
              "nerve cells that make dopamine are lost, which slows movement"),
    Condition("epilepsy", "neurologic", ("levetiracetam", "lamotrigine", "valproate"),
              ("recurrent seizures", "brief loss of awareness"), "electroencephalogram",
              ("head injury", "stroke", "family history"),
              "bursts of abnormal electrical activity in the brain cause seizures"),
    Condition("peptic ulcer disease", "gastrointestinal", ("omeprazole", "pantoprazole"),
              ("burning epigastric pain", "nausea", "dark stools"), "upper endoscopy",
              ("Helicobacter pylori infection", "NSAID use", "smoking"),
              "sores form in the lining of the stomach or duodenum"),
    Condition("deep vein thrombosis", "vascular", ("apixaban", "enoxaparin", "rivaroxaban"),
              ("unilateral leg swelling", "calf pain", "warmth of the leg"), "compression ultrasound",
              ("recent surgery", "immobility", "active cancer"),
              "a blood clot forms in a deep vein, usually in the leg"),
    Condition("urinary tract infection", "renal", ("nitrofurantoin", "trimethoprim-sulfamethoxazole", "fosfomycin"),
              ("painful urination", "urinary frequency", "suprapubic pain"), "urinalysis and urine culture",
              ("female sex", "sexual activity", "urinary catheter"),
              "bacteria infect the bladder or other parts of the urinary tract"),
    Condition("psoriasis", "dermatologic", ("topical clobetasol", "methotrexate", "ustekinumab"),
              ("scaly red plaques", "itching", "nail pitting"), "skin examination",
              ("family history", "smoking", "obesity"),
              "skin cells build up quickly and form thick, scaly patches"),
    Condition("hyperlipidemia", "cardiovascular", ("atorvastatin", "rosuvastatin", "ezetimibe"),
              ("no symptoms in most patients",), "fasting lipid panel",
              ("diet high in saturated fat", "obesity", "family history"),
              "there is too much cholesterol or other fat in the blood"),
]

DRUGS = {  # drug: (class, common side effect)
    "metformin": ("biguanide", "gastrointestinal upset"), "empagliflozin": ("SGLT2 inhibitor", "genital yeast infection"),
    "semaglutide": ("GLP-1 receptor agonist", "nausea"), "lisinopril": ("ACE inhibitor", "dry cough"),
    "amlodipine": ("calcium channel blocker", "ankle swelling"), "hydrochlorothiazide": ("thiazide diuretic", "low potassium"),
    "sacubitril-valsartan": ("angiotensin receptor-neprilysin inhibitor", "low blood pressure"),
    "carvedilol": ("beta blocker", "dizziness"), "furosemide": ("loop diuretic", "dehydration"),
    "amoxicillin": ("penicillin antibiotic", "diarrhea"), "azithromycin": ("macrolide antibiotic", "QT prolongation"),
    "ceftriaxone": ("cephalosporin antibiotic", "diarrhea"), "albuterol": ("short-acting beta agonist", "tremor"),
    "tiotropium": ("long-acting muscarinic antagonist", "dry mouth"), "apixaban": ("direct oral anticoagulant", "bleeding"),
    "metoprolol": ("beta blocker", "slow heart rate"), "dapagliflozin": ("SGLT2 inhibitor", "genital yeast infection"),
    "methotrexate": ("antimetabolite", "liver toxicity"), "adalimumab": ("TNF inhibitor", "serious infection"),
    "sertraline": ("selective serotonin reuptake inhibitor", "nausea"),
    "escitalopram": ("selective serotonin reuptake inhibitor", "sexual dysfunction"),
    "levothyroxine": ("thyroid hormone replacement", "palpitations when overdosed"),
    "ferrous sulfate": ("oral iron supplement", "constipation"), "sumatriptan": ("triptan", "chest tightness"),
    "colchicine": ("anti-inflammatory alkaloid", "diarrhea"), "allopurinol": ("xanthine oxidase inhibitor", "skin rash"),
    "alendronate": ("bisphosphonate", "esophageal irritation"), "levodopa-carbidopa": ("dopamine precursor combination", "nausea"),
    "levetiracetam": ("antiseizure medication", "irritability"), "omeprazole": ("proton pump inhibitor", "headache"),
    "enoxaparin": ("low-molecular-weight heparin", "bleeding"), "nitrofurantoin": ("nitrofuran antibiotic", "nausea"),
    "atorvastatin": ("statin", "muscle aches"), "prednisone": ("corticosteroid", "high blood sugar"),
}

GENES = ["TP53", "EGFR", "KRAS", "BRCA1", "MTOR", "IL6", "TNF", "PDCD1", "ERBB2", "VEGFA", "APOE", "PCSK9",
         "SIRT1", "NLRP3", "HIF1A", "MYC", "STAT3", "FOXO1", "PPARG", "TLR4", "SOD2", "NFE2L2", "CDKN2A", "AMPK"]
CELLS = ["macrophages", "CD8+ T cells", "hepatocytes", "cardiomyocytes", "cortical neurons", "podocytes",
         "pancreatic beta cells", "endothelial cells", "fibroblasts", "airway epithelial cells", "adipocytes",
         "microglia", "osteoclasts", "keratinocytes", "regulatory T cells", "vascular smooth muscle cells"]
MODELS = ["a mouse model", "a rat model", "patient-derived organoids", "a zebrafish model", "primary human cells",
          "an in vitro co-culture system", "knockout mice", "a xenograft model"]
METHODS = ["RNA sequencing", "western blotting", "flow cytometry", "CRISPR-Cas9 knockout", "immunohistochemistry",
           "mass spectrometry", "single-cell RNA sequencing", "chromatin immunoprecipitation", "confocal microscopy",
           "quantitative PCR", "metabolomic profiling", "whole-exome sequencing"]
PROCESSES = ["oxidative stress", "mitochondrial dysfunction", "inflammatory signalling", "autophagy", "apoptosis",
             "insulin resistance", "fibrosis", "cell proliferation", "angiogenesis", "lipid accumulation",
             "epithelial barrier function", "immune cell infiltration", "DNA damage repair", "glucose uptake"]
OUTCOMES = ["all-cause mortality", "hospital readmission", "major adverse cardiovascular events", "hospitalization",
            "disease progression", "emergency department visits", "treatment failure", "severe exacerbations"]
POPULATIONS = ["adults", "older adults", "outpatients", "hospitalized patients", "adolescents", "women",
               "patients in primary care", "veterans", "patients from rural clinics", "community-dwelling adults"]
DESIGNS = ["randomized controlled trial", "prospective cohort study", "retrospective cohort study",
           "case-control study", "cross-sectional study", "systematic review and meta-analysis"]

GENERAL_TOPICS = {
    "geography": ["Rivers shape the land they cross. Over thousands of years, flowing water carves valleys, carries sediment downstream and builds fertile plains near its mouth.",
                  "Deserts cover roughly a fifth of the land on Earth. Not all of them are hot: the interior of Antarctica receives so little precipitation that it is classed as a desert.",
                  "Mountain ranges form where tectonic plates collide. The rocks are pushed upward over millions of years, while wind, ice and rain slowly wear them down.",
                  "Islands can form in several ways. Some are the tops of volcanoes rising from the sea floor, others are pieces of continent separated by rising sea levels, and some are built by coral."],
    "science": ["Water boils at 100 degrees Celsius at sea level, but at lower temperatures on high mountains, where the air pressure is lower.",
                "Plants make their food by photosynthesis. Using energy from sunlight, they turn carbon dioxide and water into sugar and release oxygen.",
                "Sound travels as a wave of pressure through air, water or solids. It moves faster in water than in air and cannot travel through a vacuum.",
                "The Moon causes most of the tides. Its gravity pulls on the oceans, raising a bulge of water on the side of Earth facing it and another on the opposite side.",
                "Light from the Sun takes a little over eight minutes to reach Earth, travelling about 150 million kilometres through space."],
    "history": ["The printing press with movable type, developed in Europe in the fifteenth century, made books far cheaper and helped spread literacy and new ideas.",
                "Early farming communities began to appear around ten thousand years ago, when people started to cultivate grains and keep animals instead of only hunting and gathering.",
                "The first public railways opened in the early nineteenth century. Within a few decades, rail lines connected cities and changed how people and goods moved.",
                "Ancient libraries collected scrolls from many lands. Scholars copied, translated and studied these texts, preserving knowledge for later generations."],
    "everyday": ["A good night's sleep helps memory and mood. Keeping a regular bedtime and avoiding screens late in the evening makes it easier to fall asleep.",
                 "Bread dough rises because yeast feeds on sugars and releases carbon dioxide. Kneading builds gluten, which traps the gas and gives the loaf its structure.",
                 "Houseplants need light, water and occasional feeding. Most are harmed more by too much water than too little, so the soil should dry a little between waterings.",
                 "Cycling to work saves money and adds exercise to the day. A helmet, lights and a lock are the basic equipment most riders need.",
                 "Composting turns kitchen scraps and garden waste into rich soil. A mix of green material, such as vegetable peelings, and brown material, such as dry leaves, works best."],
}


# ---------------------------------------------------------------- small helpers
def pick(rng: random.Random, seq, k: int | None = None):
    return rng.choice(seq) if k is None else rng.sample(list(seq), k)


def pct(rng: random.Random, lo: float, hi: float) -> str:
    return f"{rng.uniform(lo, hi):.1f}%"


def ci(rng: random.Random, effect: float) -> str:
    lo, hi = effect * rng.uniform(0.7, 0.92), effect * rng.uniform(1.08, 1.35)
    return f"{effect:.2f}; 95% CI, {lo:.2f} to {hi:.2f}"


def join_list(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ---------------------------------------------------------------- biomedical abstracts
def abstract_trial(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    drug = pick(rng, c.drugs)
    pop, outcome = pick(rng, POPULATIONS), pick(rng, OUTCOMES)
    n = rng.randint(120, 4800)
    weeks = pick(rng, [12, 24, 26, 48, 52, 104])
    hr = rng.uniform(0.62, 0.97) if rng.random() < 0.7 else rng.uniform(0.95, 1.08)
    significant = hr < 0.9
    p = f"P{'<0.001' if hr < 0.75 else '=' + format(rng.uniform(0.002, 0.04), '.3f')}" if significant else f"P={rng.uniform(0.2, 0.9):.2f}"
    intro = pick(rng, [
        f"Whether {drug} improves {outcome} in {pop} with {c.name} remains uncertain.",
        f"Evidence on the effect of {drug} on {outcome} among {pop} with {c.name} is limited.",
        f"{cap(c.name)} is common among {pop}, and {outcome} remains a major concern despite current therapy.",
    ])
    methods = pick(rng, [
        f"In this multicentre, double-blind trial, we randomly assigned {n} {pop} with {c.name} to receive {drug} or placebo for {weeks} weeks.",
        f"We conducted a pragmatic randomized trial in which {n} participants with {c.name} were assigned to {drug} or usual care and followed for {weeks} weeks.",
        f"Adults with {c.name} (n={n}) were randomized 1:1 to {drug} or matching placebo; the primary outcome was {outcome} at {weeks} weeks.",
    ])
    res_a = pick(rng, [
        f"The primary outcome occurred in {pct(rng, 8, 20)} of the {drug} group and {pct(rng, 12, 26)} of the control group (hazard ratio, {ci(rng, hr)}; {p}).",
        f"Compared with control, {drug} {'reduced' if significant else 'did not significantly change'} the risk of {outcome} (hazard ratio, {ci(rng, hr)}; {p}).",
    ])
    side = DRUGS.get(drug, ("", "adverse events"))[1]
    res_b = pick(rng, [
        f"{cap(side)} was reported more often with {drug} ({pct(rng, 3, 12)} vs. {pct(rng, 1, 5)}).",
        f"Serious adverse events were similar in the two groups; {side} was the most frequent complaint.",
        f"Discontinuation because of adverse events occurred in {pct(rng, 2, 9)} of participants receiving {drug}.",
    ])
    concl = (pick(rng, [f"Among {pop} with {c.name}, {drug} lowered the risk of {outcome}.",
                        f"These findings support the use of {drug} to reduce {outcome} in {c.name}."])
             if significant else
             pick(rng, [f"In this trial, {drug} did not reduce {outcome} among {pop} with {c.name}.",
                        f"Treatment with {drug} did not lead to a significant difference in {outcome}; larger trials may be needed."]))
    return " ".join([intro, methods, res_a, res_b, concl])


def abstract_cohort(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    risk = pick(rng, c.risks)
    n = rng.randint(900, 250000)
    years = rng.randint(3, 20)
    design = pick(rng, DESIGNS[1:5])
    odds = rng.uniform(1.15, 2.9)
    return " ".join([
        pick(rng, [f"{cap(risk)} has been proposed as a risk factor for {c.name}.",
                   f"The contribution of {risk} to the burden of {c.name} has not been well quantified.",
                   f"Few studies have examined how {risk} relates to the onset of {c.name} in {pick(rng, POPULATIONS)}."]),
        pick(rng, [f"We performed a {design} including {n:,} participants followed for a median of {years} years.",
                   f"This {design} used linked health records of {n:,} individuals to assess the association.",
                   f"Data from {n:,} participants were analysed in a {design} with adjustment for age, sex and comorbidity."]),
        pick(rng, [f"During follow-up, {rng.randint(80, 9000):,} participants developed {c.name}.",
                   f"The incidence of {c.name} was {rng.uniform(1.2, 24):.1f} per 1,000 person-years.",
                   f"Diagnosis was confirmed by {c.test} in {pct(rng, 70, 96)} of cases."]),
        pick(rng, [f"{cap(risk)} was associated with a higher risk of {c.name} (adjusted odds ratio, {ci(rng, odds)}).",
                   f"Participants with {risk} had an adjusted hazard ratio of {ci(rng, odds)} for {c.name}.",
                   f"The association with {risk} persisted after adjustment (relative risk, {ci(rng, odds)})."]),
        pick(rng, [f"{cap(risk)} is a potentially modifiable target for preventing {c.name}.",
                   f"These results highlight {risk} as an important factor in the development of {c.name}.",
                   f"Screening strategies for {c.name} could take {risk} into account."]),
    ])


def abstract_basic(rng: random.Random) -> str:
    gene, cell, process = pick(rng, GENES), pick(rng, CELLS), pick(rng, PROCESSES)
    c, model = pick(rng, CONDITIONS), pick(rng, MODELS)
    m1, m2 = pick(rng, METHODS, 2)
    direction = pick(rng, ["increased", "reduced"])
    fold = rng.uniform(1.4, 5.8)
    return " ".join([
        pick(rng, [f"{cap(process)} in {cell} contributes to the progression of {c.name}, but the regulators involved are incompletely understood.",
                   f"The role of {gene} in {cell} during {c.name} remains unclear.",
                   f"{gene} has been implicated in {process}, yet its function in {c.name} is poorly defined."]),
        pick(rng, [f"Here we used {model} together with {m1} and {m2} to examine {gene} signalling.",
                   f"We combined {m1} of {cell} with {m2} in {model}.",
                   f"Using {model}, we characterised {cell} by {m1} and validated key findings with {m2}."]),
        pick(rng, [f"Expression of {gene} was {direction} {fold:.1f}-fold in {cell} from diseased tissue compared with controls.",
                   f"Loss of {gene} {direction} {process} and altered the transcriptional profile of {cell}.",
                   f"Pharmacological inhibition of {gene} {direction} {process} by {rng.randint(25, 70)}% in {cell}."]),
        pick(rng, [f"Mechanistically, {gene} interacted with {pick(rng, GENES)} to regulate {pick(rng, PROCESSES)}.",
                   f"These changes were accompanied by {pick(rng, ['lower', 'higher'])} levels of {pick(rng, GENES)} and {pick(rng, PROCESSES)}.",
                   f"Restoring {gene} expression reversed these effects."]),
        pick(rng, [f"Our findings identify {gene} as a regulator of {process} in {c.name} and a candidate therapeutic target.",
                   f"Targeting the {gene} pathway in {cell} may offer a new approach to {c.name}.",
                   f"Together, these data link {gene} to {process} in {cell}."]),
    ])


def abstract_diagnostic(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    n = rng.randint(150, 3000)
    sens, spec = rng.uniform(72, 97), rng.uniform(70, 98)
    tool = pick(rng, ["a point-of-care assay", "a deep learning model", "a clinical prediction score",
                      "a smartphone-based screening tool", "a rapid bedside test"])
    return " ".join([
        pick(rng, [f"Early recognition of {c.name} can be difficult in {pick(rng, POPULATIONS)}.",
                   f"The reference standard for {c.name}, {c.test}, is not always available."]),
        f"We assessed the diagnostic accuracy of {tool} against {c.test} in {n} consecutive patients.",
        f"Sensitivity was {sens:.1f}% and specificity was {spec:.1f}%; the area under the curve was {rng.uniform(0.78, 0.96):.2f}.",
        pick(rng, [f"Performance was lower in patients with {pick(rng, c.risks)}.",
                   "Accuracy was similar across age groups and sexes.",
                   f"False negatives were most often seen in patients presenting with {pick(rng, c.symptoms)} alone."]),
        pick(rng, [f"{cap(tool)} may help triage patients with suspected {c.name}.",
                   f"Further validation is needed before {tool} replaces {c.test}."]),
    ])


def abstract_review(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    drug = pick(rng, c.drugs)
    k, n = rng.randint(6, 48), rng.randint(2000, 90000)
    rr = rng.uniform(0.6, 1.02)
    return " ".join([
        f"We systematically reviewed trials of {drug} in {c.name}.",
        f"Searches of bibliographic databases identified {k} eligible studies with {n:,} participants in total.",
        f"Pooled analysis showed a relative risk of {ci(rng, rr)} for {pick(rng, OUTCOMES)}, with {pick(rng, ['low', 'moderate', 'substantial'])} heterogeneity (I2 = {rng.randint(0, 80)}%).",
        pick(rng, [f"The certainty of evidence was rated {pick(rng, ['high', 'moderate', 'low'])}.",
                   "Risk of bias was low in most trials, although several were open-label."]),
        (f"{cap(drug)} appears beneficial in {c.name}." if rr < 0.9 else
         f"Current evidence does not show a clear benefit of {drug} in {c.name}."),
    ])


def abstract(rng: random.Random) -> str:
    make = rng.choices([abstract_trial, abstract_cohort, abstract_basic, abstract_diagnostic, abstract_review],
                       weights=[3, 3, 4, 1.5, 1.5])[0]
    return make(rng)


# ---------------------------------------------------------------- clinical notes (fictional)
def _patient(rng: random.Random) -> tuple[int, str, str]:
    age = rng.randint(24, 91)
    sex = pick(rng, ["man", "woman"])
    return age, sex, "He" if sex == "man" else "She"


def _vitals(rng: random.Random) -> str:
    return (f"T {rng.uniform(36.1, 38.9):.1f} C, HR {rng.randint(58, 124)}, BP {rng.randint(98, 172)}/{rng.randint(54, 98)}, "
            f"RR {rng.randint(12, 26)}, SpO2 {rng.randint(88, 100)}% on {pick(rng, ['room air', '2 L nasal cannula', '4 L nasal cannula'])}")


def discharge_summary(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    other = pick(rng, [x for x in CONDITIONS if x is not c])
    age, sex, he = _patient(rng)
    days = rng.randint(2, 9)
    drug = pick(rng, c.drugs)
    return "\n".join([
        "DISCHARGE SUMMARY",
        f"Admission diagnosis: {c.name}.",
        f"History: {age}-year-old {sex} with a history of {other.name} who presented with "
        f"{join_list(pick(rng, c.symptoms, min(2, len(c.symptoms))))} for {rng.randint(1, 14)} days.",
        f"Hospital course: {pick(rng, ['Workup included', 'Evaluation included', 'The team obtained'])} {c.test}, "
        f"which {pick(rng, ['confirmed the diagnosis', 'was consistent with the diagnosis', 'supported the working diagnosis'])}. "
        f"{he} was started on {drug} and {pick(rng, ['improved steadily', 'tolerated treatment well', 'improved over the next 48 hours'])}. "
        f"Home {pick(rng, sorted(DRUGS))} was {pick(rng, ['continued', 'held on admission and resumed at discharge', 'continued at the same dose'])}.",
        f"Condition at discharge: {pick(rng, ['stable', 'improved', 'good'])}. Length of stay {days} days.",
        f"Discharge medications: {drug}; {pick(rng, other.drugs)}.",
        f"Follow-up: {pick(rng, ['primary care', 'cardiology', 'endocrinology', 'pulmonology', 'nephrology', 'neurology'])} "
        f"in {rng.randint(1, 4)} weeks; repeat {c.test} {pick(rng, ['at follow-up', 'in 3 months', 'as outpatient'])}.",
    ])


def progress_note(rng: random.Random) -> str:
    c = pick(rng, CONDITIONS)
    age, sex, he = _patient(rng)
    drug = pick(rng, c.drugs)
    return "\n".join([
        f"PROGRESS NOTE - hospital day {rng.randint(1, 8)}",
        f"S: {pick(rng, ['Feels better today.', 'Reports ongoing ' + pick(rng, c.symptoms) + '.', 'Slept poorly overnight.', 'No new complaints.'])} "
        f"{pick(rng, ['Tolerating diet.', 'Appetite fair.', 'Ambulating with assistance.', 'Denies chest pain.'])}",
        f"O: {_vitals(rng)}. {pick(rng, ['Lungs with scattered crackles.', 'Lungs clear bilaterally.', 'Trace bilateral leg edema.', 'Abdomen soft, nontender.', 'Alert and oriented.'])}",
        f"A: {age}-year-old {sex} with {c.name}, {pick(rng, ['improving', 'clinically stable', 'slowly improving', 'not yet at baseline'])}.",
        f"P: Continue {drug}. {pick(rng, ['Monitor electrolytes daily.', 'Repeat ' + c.test + ' tomorrow.', 'Physical therapy evaluation.', 'Anticipate discharge in 1-2 days.', 'Encourage oral intake.'])}",
    ])


RADIOLOGY = {  # study: (normal finding, [(abnormal finding, impression)], [incidental findings])
    "CHEST": ("No focal consolidation, effusion or pneumothorax.",
              [("Right lower lobe consolidation.", "Findings concerning for pneumonia."),
               ("Patchy left lower lobe opacity.", "Possible early pneumonia; clinical correlation advised."),
               ("Mild pulmonary vascular congestion with small bilateral pleural effusions.", "Findings suggest volume overload."),
               ("Hyperinflated lungs with flattened diaphragms.", "Hyperinflation, compatible with obstructive lung disease."),
               ("Enlarged cardiac silhouette with interstitial edema.", "Cardiomegaly with mild pulmonary edema.")],
              ["Stable 6 mm nodule in the right upper lobe.", "Mild degenerative changes of the thoracic spine.", "Left basilar atelectasis."]),
    "ABDOMEN": ("No bowel obstruction, free air or fluid collection.",
                [("Dilated small bowel loops with a transition point in the right lower quadrant.", "Findings consistent with small bowel obstruction."),
                 ("Thickened sigmoid colon with surrounding fat stranding.", "Acute uncomplicated sigmoid diverticulitis.")],
                ["Mild hepatic steatosis.", "Simple cyst in the left kidney.", "Colonic diverticulosis."]),
    "RENAL": ("Both kidneys are normal in size without hydronephrosis or calculi.",
              [("Increased cortical echogenicity bilaterally with thinning of the cortex.", "Findings consistent with chronic medical renal disease."),
               ("Moderate right hydronephrosis.", "Right hydronephrosis; consider obstruction.")],
              ["Small simple cyst in the right kidney."]),
    "VENOUS": ("Normal compressibility and flow in the deep veins; no thrombus.",
               [("Noncompressible left popliteal vein with intraluminal thrombus.", "Acute deep vein thrombosis of the left popliteal vein."),
                ("Noncompressible right femoral vein with echogenic thrombus.", "Deep vein thrombosis of the right femoral vein.")],
               []),
}


INDICATIONS = {
    "CHEST": ["Shortness of breath.", "Fever and cough.", "Hypoxia.", "Chest pain.", "Follow-up of known nodule."],
    "ABDOMEN": ["Abdominal pain.", "Nausea and vomiting.", "Left lower quadrant pain and fever."],
    "RENAL": ["Rising creatinine.", "Acute kidney injury.", "Flank pain."],
    "VENOUS": ["Leg swelling.", "Calf pain after recent surgery."],
}


def radiology_report(rng: random.Random) -> str:
    study = pick(rng, ["CHEST RADIOGRAPH, PA AND LATERAL", "PORTABLE CHEST RADIOGRAPH", "CT CHEST WITHOUT CONTRAST",
                       "CT ABDOMEN AND PELVIS WITH CONTRAST", "RENAL ULTRASOUND", "LOWER EXTREMITY VENOUS DUPLEX"])
    key = next(k for k in ("CHEST", "ABDOMEN", "RENAL", "VENOUS") if k in study)
    normal, abnormal, incidental = RADIOLOGY[key]
    if rng.random() < 0.55:
        finding, imp = pick(rng, abnormal)
    else:
        finding, imp = normal, pick(rng, ["No acute abnormality.", "No acute process.", "Stable examination."])
    chosen = [finding] + ([pick(rng, incidental)] if incidental and rng.random() < 0.4 else [])
    return "\n".join([
        f"EXAM: {study}",
        f"INDICATION: {pick(rng, INDICATIONS[key])}",
        f"COMPARISON: {pick(rng, ['None.', 'Prior study from an earlier admission.', 'Outside images not available.'])}",
        "FINDINGS: " + " ".join(chosen),
        f"IMPRESSION: {imp}",
    ])


def clinical_note(rng: random.Random) -> str:
    return rng.choices([discharge_summary, progress_note, radiology_report], weights=[3, 4, 3])[0](rng)


# ---------------------------------------------------------------- general text
ANIMALS = [
    ("honeybee", "hives", "nectar and pollen", "tells other workers where flowers are with a waggle dance"),
    ("red fox", "forests, farmland and even cities", "small mammals, birds, fruit and scraps", "hears low-frequency sounds of rodents moving underground"),
    ("octopus", "rocky sea floors and coral reefs", "crabs, shrimp and clams", "can change the colour and texture of its skin in a fraction of a second"),
    ("emperor penguin", "the sea ice around Antarctica", "fish, krill and squid", "keeps its egg warm on its feet through the winter"),
    ("African elephant", "savannas and forests", "grasses, leaves, bark and fruit", "uses its trunk to drink, smell, lift objects and greet others"),
    ("barn owl", "open country and farm buildings", "voles and mice", "can find prey in complete darkness by sound alone"),
    ("salmon", "rivers and the open ocean", "insects when young and smaller fish as adults", "returns to the stream where it hatched in order to spawn"),
    ("monarch butterfly", "meadows and fields with milkweed", "nectar as an adult and milkweed leaves as a caterpillar", "migrates thousands of kilometres between summer and winter ranges"),
    ("beaver", "rivers, streams and lakes", "bark, twigs and water plants", "builds dams that create ponds and wetlands for many other species"),
    ("dolphin", "coastal waters and open seas", "fish and squid", "finds food by echolocation, listening to the echoes of its own clicks"),
    ("earthworm", "moist soil", "decaying leaves and other organic matter", "mixes and aerates the soil as it burrows"),
    ("hummingbird", "gardens, forests and mountain meadows", "flower nectar and small insects", "can hover in place and even fly backwards"),
]
FOODS = [
    ("rice", "boiled or steamed", "a staple food for more than half of the world's people"),
    ("lentils", "simmered in soups and stews", "a good source of protein and fibre"),
    ("tomatoes", "eaten raw, roasted or cooked into sauces", "botanically a fruit, though usually treated as a vegetable"),
    ("oats", "cooked into porridge or baked into biscuits", "rich in a soluble fibre called beta-glucan"),
    ("potatoes", "boiled, mashed, baked or fried", "first cultivated in the Andes of South America"),
    ("yogurt", "eaten plain, with fruit, or used in sauces", "made by fermenting milk with bacteria"),
    ("spinach", "added to salads or wilted into warm dishes", "a leafy green that contains folate and vitamin K"),
    ("apples", "eaten fresh, baked in pies or pressed into juice", "grown in orchards in many temperate countries"),
]
ACTIVITIES = [
    ("walking", "needs no equipment and can be fitted into most days"),
    ("swimming", "works most of the large muscle groups while being gentle on the joints"),
    ("gardening", "combines light exercise with time outdoors"),
    ("cycling", "builds leg strength and endurance"),
    ("yoga", "improves flexibility and balance"),
    ("dancing", "is a social way to raise the heart rate"),
    ("hiking", "combines exercise with time in nature"),
]
CITY_FEATURES = ["an old market square", "a river running through its centre", "a busy harbour", "narrow streets in its historic quarter",
                 "a large public park", "a university founded centuries ago", "a network of trams", "a modern art museum"]


def general_paragraph(rng: random.Random) -> str:
    kind = rng.choices(["animal", "food", "activity", "town", "topic"], weights=[3, 2, 2, 2, 3])[0]
    if kind == "animal":
        name, home, diet, trait = pick(rng, ANIMALS)
        parts = [pick(rng, [f"The {name} lives in {home}.", f"The {name} is found in {home}.", f"Many people have heard of the {name}, which makes its home in {home}."]),
                 pick(rng, [f"Its diet consists mainly of {diet}.", f"It feeds on {diet}.", f"It eats {diet}."]),
                 pick(rng, [f"One remarkable fact is that it {trait}.", f"It is known because it {trait}.", f"Scientists have long studied how it {trait}."])]
    elif kind == "food":
        name, how, note = pick(rng, FOODS)
        it, is_ = ("them", "They are") if name.endswith("s") else ("it", "It is")
        parts = [f"{cap(name)} can be {how}.", f"{is_} {note}.",
                 pick(rng, [f"Cooks around the world use {it} in countless recipes.", f"Stored well, {it} can keep for some time.",
                            "Seasonal produce from local markets is often cheaper and fresher.", "A balanced diet combines foods like these with vegetables, grains and protein."])]
    elif kind == "activity":
        name, benefit = pick(rng, ACTIVITIES)
        mins = pick(rng, [20, 30, 40, 45, 60])
        parts = [f"{cap(name)} {benefit}.",
                 pick(rng, [f"Even {mins} minutes a few times a week can improve fitness and mood.", f"Many people aim for about {mins} minutes on most days.",
                            "Starting slowly and building up over several weeks helps to avoid injury."]),
                 pick(rng, ["Doing it with friends makes it easier to keep the habit.", "Comfortable shoes and water are usually all that is needed.",
                            "Regular activity also helps people sleep better.", "Local clubs often welcome beginners."])]
    elif kind == "town":
        feats = pick(rng, CITY_FEATURES, 2)
        parts = [pick(rng, ["The town is known for", "Visitors to the city often remark on", "The old port town is remembered for"]) + f" {feats[0]} and {feats[1]}.",
                 pick(rng, [f"About {rng.randint(12, 900)} thousand people live there.", "Its population grew quickly during the last century.",
                            "Tourism and small industry are the main sources of work."]),
                 pick(rng, ["In summer, festivals fill the streets with music.", "The winters are cold, and the river sometimes freezes.",
                            "A weekly market sells produce from the surrounding farms.", "Trains connect it with the capital in a few hours."])]
    else:
        topic = pick(rng, list(GENERAL_TOPICS))
        parts = pick(rng, GENERAL_TOPICS[topic], rng.randint(1, 2))
        parts.append(pick(rng, ["This is one of the reasons the subject is taught in schools.", "Such facts are easy to overlook in daily life.",
                                "Many museums and libraries offer more to read on the subject.", "The details continue to interest researchers today.",
                                "Knowing this makes everyday experiences a little easier to understand."]))
    return " ".join(parts)


# ---------------------------------------------------------------- instructions
PUBMEDQA_INSTRUCTION = "Answer the biomedical research question using the abstract. Answer with yes, no, or maybe."
MEDQA_INSTRUCTION = "Answer the medical exam question. Answer with the letter of the correct option (A, B, C or D)."


def condition_qa(rng: random.Random, c: Condition) -> list[dict]:
    first, rest = c.drugs[0], c.drugs[1:]
    treat = f"{cap(first)} is a common first-line medication for {c.name}."
    if rest:
        treat += f" Other options include {join_list(rest)}, chosen according to the patient's other conditions."
    qa = [
        (pick(rng, [f"What is a first-line medication for {c.name}?", f"Which drug is commonly started first for {c.name}?"]), treat),
        (pick(rng, [f"What are common symptoms of {c.name}?", f"List typical symptoms of {c.name}."]),
         f"Typical symptoms of {c.name} include {join_list(c.symptoms)}."),
        (pick(rng, [f"Which test is used to diagnose or monitor {c.name}?", f"How is {c.name} usually confirmed?"]),
         f"{cap(c.test)} is commonly used to diagnose or monitor {c.name}."),
        (f"What are risk factors for {c.name}?", f"Risk factors for {c.name} include {join_list(c.risks)}."),
        (pick(rng, [f"Explain {c.name} in simple terms.", f"How would you describe {c.name} to a patient?"]),
         f"In {c.name}, {c.plain}. It is managed with medicines such as {first} and regular follow-up."),
        (f"Which organ system does {c.name} mainly affect?", f"{cap(c.name)} is mainly a {c.system} condition."),
    ]
    return [{"instruction": q, "input": "", "output": a} for q, a in qa]


def drug_qa(drug: str) -> list[dict]:
    klass, side = DRUGS[drug]
    uses = [c.name for c in CONDITIONS if drug in c.drugs]
    qa = [(f"What class of medication is {drug}?", f"{cap(drug)} is a {klass}."),
          (f"What is a common side effect of {drug}?", f"A common side effect of {drug} is {side}.")]
    if uses:
        qa.append((f"What is {drug} used to treat?", f"{cap(drug)} is used to treat {join_list(uses)}."))
    return [{"instruction": q, "input": "", "output": a} for q, a in qa]


def pubmedqa_record(rng: random.Random) -> dict:
    context, question, answer = pubmedqa_parts(rng)
    return {"instruction": PUBMEDQA_INSTRUCTION, "input": f"Context: {context}\nQuestion: {question}", "output": answer}


def pubmedqa_parts(rng: random.Random) -> tuple[str, str, str]:
    """(context, question, answer) of a yes/no/maybe question about a fictional trial."""
    c = pick(rng, CONDITIONS)
    drug, outcome, pop = pick(rng, c.drugs), pick(rng, OUTCOMES), pick(rng, POPULATIONS)
    answer = rng.choices(["yes", "no", "maybe"], weights=[5, 3, 2])[0]
    n = rng.randint(60, 3000)
    if answer == "yes":
        result = f"{cap(outcome)} was lower with {drug} than with placebo (hazard ratio {rng.uniform(0.55, 0.82):.2f}; P<0.01)."
    elif answer == "no":
        result = f"{cap(outcome)} did not differ between {drug} and placebo (hazard ratio {rng.uniform(0.95, 1.06):.2f}; P={rng.uniform(0.3, 0.9):.2f})."
    else:
        result = (f"{cap(outcome)} showed a nonsignificant trend favouring {drug} (hazard ratio {rng.uniform(0.8, 0.92):.2f}; "
                  f"P={rng.uniform(0.06, 0.12):.2f}), and the small sample limited precision.")
    context = f"We randomly assigned {n} {pop} with {c.name} to {drug} or placebo. {result}"
    question = pick(rng, [f"Does {drug} reduce {outcome} in {c.name}?", f"Is {drug} effective in lowering {outcome} among {pop} with {c.name}?"])
    return context, question, answer


def medqa_record(rng: random.Random) -> dict:
    q, options, right = medqa_parts(rng)
    letters = "ABCD"
    body = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
    return {"instruction": MEDQA_INSTRUCTION, "input": f"Question: {q}\nOptions:\n{body}", "output": letters[right]}


def medqa_parts(rng: random.Random) -> tuple[str, list[str], int]:
    """(question, four options, index of the right one) of a fictional exam item."""
    c = pick(rng, CONDITIONS)
    others = [x for x in CONDITIONS if x is not c and x.system != c.system] or [x for x in CONDITIONS if x is not c]
    age, sex, _ = _patient(rng)
    symptoms = join_list(pick(rng, c.symptoms, min(2, len(c.symptoms))))
    kind = pick(rng, ["drug", "test", "diagnosis"])
    if kind == "drug":
        q = f"A {age}-year-old {sex} is diagnosed with {c.name} after presenting with {symptoms}. Which medication is an appropriate first-line treatment?"
        right = c.drugs[0]
        wrong = pick(rng, sorted({x.drugs[0] for x in others} - set(c.drugs)), 3)
    elif kind == "test":
        q = f"A {age}-year-old {sex} is suspected to have {c.name}. Which test is most useful to confirm or monitor the condition?"
        right = c.test
        wrong = pick(rng, sorted({x.test for x in others} - {c.test}), 3)
    else:
        q = f"A {age}-year-old {sex} presents with {symptoms}. Which condition is the most likely diagnosis?"
        right = c.name
        wrong = pick(rng, sorted({x.name for x in others if not set(x.symptoms) & set(c.symptoms)}), 3)
    options = wrong + [right]
    rng.shuffle(options)
    return q, options, options.index(right)


def chat_records(rng: random.Random) -> list[dict]:
    out = []
    for c in pick(rng, CONDITIONS, 8):
        first = c.drugs[0]
        messages = [
            {"role": "system", "content": "You are a careful medical assistant. You give general information, not a diagnosis."},
            {"role": "user", "content": f"My doctor said I have {c.name}. What does that mean?"},
            {"role": "assistant", "content": f"In {c.name}, {c.plain}. Your care team can explain how it applies to you."},
            {"role": "user", "content": pick(rng, [f"Is {first} a usual treatment for it?", "How is it usually treated?"])},
            {"role": "assistant", "content": f"Yes, {first} is a common first-line medication for {c.name}. Follow your doctor's instructions and report side effects such as {DRUGS.get(first, ('', 'any new symptoms'))[1]}."},
        ]
        out.append({"messages": messages})
    return out


def instruction_records(rng: random.Random) -> list[dict]:
    records = [r for c in CONDITIONS for r in condition_qa(rng, c)]
    records += [r for d in sorted(DRUGS) for r in drug_qa(d)]
    records += [pubmedqa_record(rng) for _ in range(130)]
    records += [medqa_record(rng) for _ in range(110)]
    rng.shuffle(records)
    return records + chat_records(rng)


# ---------------------------------------------------------------- main
def write_jsonl(path: Path, records: list[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(data, encoding="utf-8")
    return len(data.encode())


def fill(rng: random.Random, make, target_bytes: int) -> list[dict]:
    """Documents from `make(rng)` until about `target_bytes` of JSONL, without exact repeats."""
    seen, out, size = set(), [], 0
    while size < target_bytes:
        text = make(rng)
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text})
        size += len(json.dumps({"text": text}, ensure_ascii=False).encode()) + 1
    return out


def main() -> None:
    rng = random.Random(SEED)
    sizes = {
        "corpus/biomedical.jsonl": write_jsonl(HERE / "corpus/biomedical.jsonl", fill(rng, abstract, 300_000)),
        "corpus/clinical.jsonl": write_jsonl(HERE / "corpus/clinical.jsonl", fill(rng, clinical_note, 60_000)),
        "corpus/general.jsonl": write_jsonl(HERE / "corpus/general.jsonl", fill(rng, general_paragraph, 120_000)),
    }
    records = instruction_records(rng)
    sizes["instructions/medical_instructions.jsonl"] = write_jsonl(HERE / "instructions/medical_instructions.jsonl", records)
    for name, n in sizes.items():
        print(f"{name}: {n / 1000:.0f} KB")
    print(f"instruction records: {len(records)}")
    from make_train_splits import write_train_splits  # beside this script; its own seed, so the files above stay as they are

    write_train_splits()


if __name__ == "__main__":
    main()
