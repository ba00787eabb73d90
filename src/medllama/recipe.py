"""The typed recipe: what to train, loaded from recipes/*.yaml and validated at load time.

A recipe says *what* to train (data mix, model, hyper-parameters, evaluation tasks). Where it runs,
URIs of outputs and credentials come from the environment or pipeline parameters, never from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# A checkout's recipes/; an image sets MEDLLAMA_RECIPES to where it copied them.
RECIPES_DIR = Path(os.environ.get("MEDLLAMA_RECIPES", Path(__file__).resolve().parents[2] / "recipes"))


class RecipeError(ValueError):
    """A recipe file that cannot be used; the message names the file and the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelSpec(_Strict):
    base: str | None = Field(None, description="HF checkpoint dir or s3:// URI; null = random init from `config`")
    config: dict[str, Any] = Field(default_factory=dict, description="LlamaConfig fields: the model of a random init, "
                                   "or (with base) the base's architecture, which `medllama plan` sizes")
    tokenizer: str | None = Field(None, description="HF tokenizer dir/URI; null = train a BPE tokenizer on the corpus")
    vocab_size: int = Field(2048, gt=255, description="vocabulary of the trained BPE tokenizer (tiny recipes)")

    @model_validator(mode="after")
    def _needs_a_model(self) -> "ModelSpec":
        if self.base is None and not self.config:
            raise ValueError("set model.base (a checkpoint) or model.config (random init)")
        return self


class Source(_Strict):
    path: str = Field(..., description="local path, glob, s3:// prefix or samples:// bundled path")
    domain: str
    weight: float = Field(1.0, gt=0, description="up- (>1) or down-sampling (<1) of this source within its domain")
    text_field: str = "text"


class PhiSpec(_Strict):
    """The PHI scan of clinical text before training (medllama.data.phi)."""

    domains: list[str] = Field(default_factory=lambda: ["clinical"], description="source domains scanned; [] = no scan")
    max_per_1k_tokens: float = Field(1.0, ge=0, description="likely identifiers per 1,000 tokens above which prepare refuses")
    allow: bool = Field(False, description="train on the scanned text even above the limit (notes cleared for it)")


class DataSpec(_Strict):
    sources: list[Source] = Field(..., min_length=1)
    # Me-LLaMA: biomedical : clinical : general = 15 : 1 : 4 (paper, Methods, continued pre-training data)
    ratio: dict[str, float] = Field(default_factory=lambda: {"biomedical": 15.0, "clinical": 1.0, "general": 4.0})
    token_budget: int | None = Field(None, gt=0, description="CPT tokens to produce; null = use every source once at the ratio")
    seq_len: int = Field(..., ge=16)
    min_chars: int = Field(32, ge=0)
    near_dup_threshold: float | None = Field(
        None, gt=0, le=1, description="also drop near-duplicates (MinHash LSH Jaccard >= this; needs datasketch); null = exact dedup only"
    )
    decontaminate: Literal["drop", "flag", "off"] = Field(
        "drop", description="training documents sharing an n-gram with an eval.tasks example: drop, keep but list, or skip the check"
    )
    decontaminate_ngram: int = Field(13, ge=8, description="n-gram length in words (GPT-3's decontamination used 13)")
    instructions: list[str] = Field(default_factory=list, description="instruction-tuning JSONL files")
    phi: PhiSpec = Field(default_factory=PhiSpec)
    prompt_template: str = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    prompt_template_no_input: str = "### Instruction:\n{instruction}\n\n### Response:\n"
    seed: int = 1234

    @model_validator(mode="after")
    def _ratio_covers_domains(self) -> "DataSpec":
        missing = {s.domain for s in self.sources} - set(self.ratio)
        if missing:
            raise ValueError(f"data.ratio has no weight for domain(s) {sorted(missing)}")
        if any(v < 0 for v in self.ratio.values()) or sum(self.ratio.values()) <= 0:
            raise ValueError("data.ratio weights must be >= 0 and not all zero")
        return self


class LoraSpec(_Strict):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class TrainStage(_Strict):
    objective: Literal["cpt", "sft"]
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; overrides epochs when set")
    micro_batch_size: int = Field(1, gt=0)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(..., gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, ge=0)
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: bool = False
    activation_checkpointing: bool = False
    # throughput levers (defaults = the plain behaviour; see bench/train_throughput.py)
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3"] | None = Field(
        None, description="HF attention kernel; null = transformers' default (sdpa)")
    compile: bool = Field(False, description="torch.compile the model (DeepSpeed engine.compile)")
    fused_optimizer: bool = Field(False, description="DeepSpeed FusedAdam (CUDA, JIT-built op) instead of torch AdamW")
    bf16_master_weights: bool = Field(
        False, description="ZeRO master weights and grads (and, without offload, Adam moments) in bf16; needs bf16, zero_stage >= 1")
    lora: LoraSpec | None = None
    nproc_per_node: int = Field(1, gt=0)
    nnodes: int = Field(1, gt=0)
    save_every: int = Field(0, ge=0, description="checkpoint every N optimizer steps; 0 = only at the end")
    keep_last: int = Field(2, gt=0)
    log_every: int = Field(1, gt=0)
    seed: int = 1234

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("betas must be in [0, 1)")
        return v


class EvalTask(_Strict):
    name: str
    data: str = Field(..., description="the dataset's release file (local, s3:// or samples://)")
    limit: int | None = Field(None, gt=0)
    mode: Literal["loglikelihood", "generate"] = "loglikelihood"


class EvalSpec(_Strict):
    tasks: list[EvalTask] = Field(..., min_length=1)
    batch_size: int = Field(8, gt=0)
    tolerance: float = Field(0.02, ge=0, description="no task of the candidate may trail a reference model by more")
    margin: float = Field(0.0, ge=-1, le=1, description="the candidate's mean over tasks must beat each reference by this much")
    paper_size: Literal["13b", "70b"] | None = Field(
        None, description="report each score beside the paper's Table 3 value for this model size")
    promotion_metrics: list[str] = Field(default_factory=list, description="task/metric keys gating promotion; empty = all")


class SupervisedTask(_Strict):
    """Task-specific tuning of one benchmark dataset: its training split, its test split, its hyper-parameters."""

    name: str
    train: str = Field(..., description="the dataset's training-split release file or tree (local, s3:// or samples://)")
    test: str = Field(..., description="the test-split release file scored before and after tuning")
    limit: int | None = Field(None, gt=0, description="test examples scored; null = all")
    mode: Literal["loglikelihood", "generate"] = "loglikelihood"
    stage: dict[str, Any] = Field(default_factory=dict, description="fields of `sft` changed for this task (lr, epochs, lora, ...)")


class SupervisedSpec(_Strict):
    tasks: list[SupervisedTask] = Field(default_factory=list)

    def task(self, name: str) -> SupervisedTask:
        for t in self.tasks:
            if t.name == name.lower():
                return t
        raise RecipeError(f"supervised.tasks has no {name!r}; configured: {[t.name for t in self.tasks]}")


class RatingCriterion(_Strict):
    """One question a clinician answers about a model's differential diagnosis."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$")
    question: str
    scale: Literal["yes_no", "ordinal"] = Field("ordinal", description="yes_no: 0/1, nominal; ordinal: low..high")
    low: int = 1
    high: int = 5

    @model_validator(mode="after")
    def _range(self) -> "RatingCriterion":
        if self.scale == "yes_no":
            self.low, self.high = 0, 1
        elif self.high <= self.low:
            raise ValueError(f"rating criterion {self.name}: high ({self.high}) must exceed low ({self.low})")
        return self


class RatingSpec(_Strict):
    """Human rating of complex clinical cases (the paper's protocol is not published: our choice)."""

    top_k: int = Field(5, gt=0, description="diagnoses of each differential shown to raters")
    criteria: list[RatingCriterion] = Field(default_factory=lambda: [
        RatingCriterion(name="correct_in_top_k", question="Is the correct diagnosis among the diagnoses listed?",
                        scale="yes_no"),
        RatingCriterion(name="quality", question="Overall quality of the differential (1 = poor, 5 = excellent)"),
    ], min_length=1)
    seed: int = Field(14, description="seeds the per-case shuffle that blinds which model wrote which differential")


class RegistrySpec(_Strict):
    model_name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class Recipe(_Strict):
    name: str
    model: ModelSpec
    data: DataSpec
    cpt: TrainStage
    sft: TrainStage
    eval: EvalSpec
    registry: RegistrySpec
    supervised: SupervisedSpec = Field(default_factory=SupervisedSpec, description="task-specific tuning (the paper's supervised setting)")
    rating: RatingSpec = Field(default_factory=RatingSpec, description="human rating of clinical-case differentials")

    @model_validator(mode="after")
    def _objectives_match_stages(self) -> "Recipe":
        if self.cpt.objective != "cpt" or self.sft.objective != "sft":
            raise ValueError("cpt.objective must be 'cpt' and sft.objective must be 'sft'")
        return self

    @model_validator(mode="after")
    def _supervised_stages_are_valid(self) -> "Recipe":
        for i, task in enumerate(self.supervised.tasks):
            try:
                self.task_stage(task.name)
            except ValidationError as e:
                err = e.errors()[0]
                raise ValueError(f"supervised.tasks.{i}.stage.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return self

    def task_stage(self, task: str) -> TrainStage:
        """The `sft` stage with the task's own hyper-parameters (objective stays sft: loss on the answer only)."""
        changes = self.supervised.task(task).stage
        return TrainStage.model_validate({**self.sft.model_dump(), **changes, "objective": "sft"})

    def stage(self, name: str) -> TrainStage:
        if name not in ("cpt", "sft"):
            raise RecipeError(f"unknown stage {name!r}: use 'cpt' or 'sft'")
        return getattr(self, name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def recipe_path(name_or_path: str | Path) -> Path:
    """`tiny` → recipes/tiny.yaml; anything with a suffix or a slash is taken as a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p
    return RECIPES_DIR / f"{name_or_path}.yaml"


def load_recipe(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load and validate a recipe; `overrides` maps dotted field names ("cpt.lr") to values."""
    path = recipe_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"recipe {name_or_path!r}: no file {path}; known recipes: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        errors = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors())
        raise RecipeError(f"recipe {path}: {errors}") from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise RecipeError(f"override {dotted!r}: {key!r} is not a section of the recipe")
        node = node[key]
    node[leaf] = value
