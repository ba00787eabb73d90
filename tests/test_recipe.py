"""Every recipe loads and validates; bad values fail with a message naming the field."""

import pytest

from medllama.recipe import RECIPES_DIR, RecipeError, load_recipe

RECIPES = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def test_there_are_recipes():
    assert "tiny" in RECIPES


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_loads(name):
    recipe = load_recipe(name)
    assert recipe.cpt.objective == "cpt" and recipe.sft.objective == "sft"
    assert set(recipe.data.ratio) >= {s.domain for s in recipe.data.sources}
    assert recipe.eval.tasks and recipe.registry.model_name


def test_overrides_are_applied_and_validated():
    recipe = load_recipe("tiny", {"cpt.max_steps": 7, "data.seq_len": 64})
    assert recipe.cpt.max_steps == 7 and recipe.data.seq_len == 64
    with pytest.raises(RecipeError, match=r"cpt\.lr"):
        load_recipe("tiny", {"cpt.lr": "fast"})
    with pytest.raises(RecipeError, match="not a section"):
        load_recipe("tiny", {"cpt.lr.value": 1})


def test_unknown_field_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((RECIPES_DIR / "tiny.yaml").read_text().replace("  lr: 3.0e-3", "  lr: 3.0e-3\n  learning_rate: 1"))
    with pytest.raises(RecipeError, match=r"cpt\.learning_rate: Extra inputs"):
        load_recipe(bad)


def test_ratio_must_cover_every_domain():
    with pytest.raises(RecipeError, match="no weight for domain"):
        load_recipe("tiny", {"data.ratio": {"biomedical": 1, "general": 1}})


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(RecipeError, match="known recipes: .*tiny"):
        load_recipe("no-such-recipe")
