"""The `medllama` command: verbs parse, and a user's mistake is one clear line with exit code 2."""

import subprocess
import sys

import pytest
import yaml

from medllama.cli import main, parse_overrides
from medllama.recipe import Recipe, load_recipe


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medllama.cli", *args], capture_output=True, text=True)


def test_recipe_verb_prints_the_resolved_recipe():
    out = run_cli("recipe", "--recipe", "tiny", "--set", "cpt.max_steps=9", "--set", "sft.lora={r: 4, alpha: 8}")
    assert out.returncode == 0, out.stderr
    printed = Recipe.model_validate(yaml.safe_load(out.stdout))
    assert printed.cpt.max_steps == 9 and printed.sft.lora.r == 4
    assert printed.data == load_recipe("tiny").data


@pytest.mark.parametrize(
    "args, message",
    [
        (["recipe", "--recipe", "nope"], "recipe 'nope': no file"),
        (["recipe", "--set", "cpt.lr=fast"], "cpt.lr: Input should be a valid number"),
        (["recipe", "--set", "novalue"], "expected KEY=VALUE"),
        (["prepare", "--set", "data.sources=[{path: /no/such/file.jsonl, domain: general}]", "--output", "/tmp/x"],
         "/no/such/file.jsonl"),
        (["evaluate", "--model", "/tmp", "--task", "mednli"], "credentialed data from PhysioNet"),
        (["evaluate", "--model", "/no/such/model", "--task", "medqa"], "/no/such/model: no such file"),
        (["evaluate", "--model", "/tmp", "--task", "nosuchtask"], "nosuchtask"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_parse_overrides_reads_yaml_values():
    assert parse_overrides(["a.b=1e-4", "c=true", "d=[1, 2]", "e=text"]) == {"a.b": 1e-4, "c": True, "d": [1, 2], "e": "text"}


def test_main_returns_2_on_bad_recipe(capsys):
    assert main(["recipe", "--recipe", "missing"]) == 2
    assert "known recipes" in capsys.readouterr().err
