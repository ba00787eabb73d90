"""The model card: content from metrics/params/tags, and the cut that fits MLflow's description column."""

from medllama.registry.card import DATA_USE_NOTE, DESCRIPTION_LIMIT, fit_description, model_card


def test_card_has_mix_metrics_use_and_license() -> None:
    card = model_card("me-llama-13b", {"pubmedqa/accuracy": 0.7, "mednli/macro_f1": 0.472},
                      {"data.ratio.biomedical": "15.0", "data.ratio.clinical": "1.0", "data.ratio.general": "4.0",
                       "data.seq_len": "4096"}, {"recipe": "me-llama-13b", "owner": "x"}, "Me-LLaMA 13B chat.")
    assert card.startswith("# me-llama-13b\n\nMe-LLaMA 13B chat.")
    assert "- **recipe**: `me-llama-13b`" in card and "owner" not in card
    assert "| biomedical | 15.0 | 75.0% |" in card and "| clinical | 1.0 | 5.0% |" in card
    assert "- **data.seq_len**: 4096" in card
    assert "| pubmedqa | accuracy | 0.7000 |" in card and "| mednli | macro_f1 | 0.4720 |" in card
    assert "Not for clinical decision-making" in card and DATA_USE_NOTE in card


def test_card_sets_scores_beside_references_and_the_paper_and_shows_the_phi_scan() -> None:
    card = model_card("me-llama-13b", {"pubmedqa/accuracy": 0.71, "cpt_parent/pubmedqa/accuracy": 0.3,
                                       "paper/pubmedqa/accuracy": 0.7, "medqa/accuracy": 0.4,
                                       "phi/NAME": 3, "phi/SSN": 0, "phi/per_1k_tokens": 0.25}, {}, {})
    assert "| task | metric | value | CPT parent | paper (Table 3) |" in card
    assert "| pubmedqa | accuracy | 0.7100 | 0.3000 | 0.7000 |" in card and "| medqa | accuracy | 0.4000 | — | — |" in card
    assert "## PHI scan of the clinical training text" in card and "| NAME | 3 |" in card and "| SSN | 0 |" in card
    assert "0.250 per 1,000 tokens" in card and "| phi |" not in card


def test_card_without_mix_or_metrics_says_so() -> None:
    card = model_card("m", {}, {}, {})
    assert "Not recorded for this version" in card and "15 : 1 : 4" in card
    assert "No evaluation metrics were recorded" in card


def test_fit_description_keeps_short_cards_and_cuts_long_ones_at_a_line() -> None:
    short = model_card("m", {"a/b": 1.0}, {}, {})
    assert fit_description(short, "model_card.md") == short
    long = model_card("m", {f"task{i}/accuracy": 0.5 for i in range(400)}, {}, {})
    cut = fit_description(long, "model_card.md")
    assert len(long) > DESCRIPTION_LIMIT >= len(cut)
    assert cut.endswith("the full card is the run artifact `model_card.md`)\n")
    body = cut.split("\n\n… (card truncated")[0]
    assert long.startswith(body) and body.splitlines()[-1] in long.splitlines()  # cut between lines


def test_card_shows_measured_training_compute_per_stage():
    from medllama.steps import training_metrics

    metrics = {"pubmedqa/accuracy": 0.6, **training_metrics({
        "cpt": {"gpu_hours": 12.5, "cost": 31.25, "train_seconds": 5625.0, "world_size": 8, "tokens_per_s_per_gpu": 3100.0,
                "mfu": 0.41, "final_loss": 1.9},
        "sft": {"gpu_hours": 0.5, "cost": None, "train_seconds": 900.0, "world_size": 2, "mfu": None}})}
    assert metrics["train/cpt/gpu_hours"] == 12.5 and "train/sft/cost" not in metrics
    card = model_card("m", metrics, {}, {})
    compute = card.split("## Training compute")[1]
    assert "| cpt | 8 | 5,625 s | 12.5 | 31.25 | 3,100 | 41.0% |" in compute
    assert "| sft | 2 | 900 s | 0.5 | — | — | — |" in compute
    assert "train/" not in card.split("## Evaluation")[1].split("## Training compute")[0]  # not an eval metric
