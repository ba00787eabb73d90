"""images/*.Dockerfile: each installs what its entrypoint imports, from a pinned base, runs as non-root,
has a healthcheck, no secrets, and the medllama CLI as entrypoint.

No Docker engine can run here, so the images are not built: the Dockerfiles are read, and the Python
packages each image's code imports (medllama.imports label, followed through medllama's own modules) are
checked against what its `pip install` lines install — pyproject's base dependencies plus the named
extras, with their own dependencies (from this venv's metadata) — and what its base image provides.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shlex
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
IMAGES = sorted((ROOT / "images").glob("*.Dockerfile"))
BASE_PROVIDES = {"nvcr.io/nvidia/pytorch": {"torch"}}  # the NGC image's CUDA torch (pip keeps it)


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def pip_installs(steps: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """(extras of `pip install .[...]`, other distributions named in pip install lines)."""
    extras, dists = set(), set()
    for op, arg in steps:
        for command in arg.split("&&") if op == "RUN" else []:
            words = shlex.split(command.strip())
            if words[:2] != ["pip", "install"] and words[1:3] != ["pip", "install"]:
                continue
            for word in words:
                if word.startswith(".["):
                    extras |= set(word[2:-1].split(","))
                elif re.match(r"^[A-Za-z0-9_.-]+==", word):
                    dists.add(canonicalize_name(Requirement(word).name))
    return extras, dists


def label(steps: list[tuple[str, str]], key: str) -> str:
    labels = " ".join(arg for op, arg in steps if op == "LABEL")
    found = re.search(rf'{re.escape(key)}="([^"]*)"', labels)
    assert found, f"LABEL {key} missing"
    return found[1]


@cache
def closure(names: frozenset[str]) -> set[str]:
    """The distributions `names` install: themselves and their dependencies, recursively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def installed(extras: set[str], dists: set[str]) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in extras:
        assert extra in project["optional-dependencies"], f"extra [{extra}] is not in pyproject.toml"
        declared += project["optional-dependencies"][extra]
    return closure(frozenset({Requirement(r).name for r in declared} | dists))


def _guarded(node: ast.AST, parents: dict) -> bool:
    """An import inside `try: ... except ImportError` is optional."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers):
            return True
    return False


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_modules(name: str) -> list[str]:
    """`name` and, for a package, every module under it."""
    path = module_file(name)
    if path is None or path.name != "__init__.py":
        return [name]
    return [name] + [".".join((name, *p.relative_to(path.parent).with_suffix("").parts)).removesuffix(".__init__")
                     for p in sorted(path.parent.rglob("*.py")) if p != path]


def third_party_imports(roots: list[str]) -> set[str]:
    """Top-level modules outside medllama and the stdlib that `roots` (and every package under them) import,
    following the medllama modules they import."""
    found, seen = set(), set()
    todo = [m for root in roots for m in package_modules(root)]
    while todo:
        name = todo.pop()
        if not name.startswith("medllama"):
            found.add(name.split(".")[0])
            continue
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _guarded(node, parents):
                continue
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
                continue
            module = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{module}" if module else base
            todo.append(module)
            todo += [f"{module}.{a.name}" for a in node.names if module_file(f"{module}.{a.name}")]
    return {m for m in found if m not in sys.stdlib_module_names and m != "__future__"}


def not_installed(dockerfile: Path) -> dict[str, list[str]]:
    """Imported module -> the distributions that would provide it, for each one the image does not install."""
    steps = instructions(dockerfile)
    base = next(arg for op, arg in steps if op == "FROM")
    extras, dists = pip_installs(steps)
    provided = {canonicalize_name(d) for prefix, ds in BASE_PROVIDES.items() if base.startswith(prefix) for d in ds}
    have = installed(extras, dists) | provided
    to_dists = md.packages_distributions()
    missing = {}
    for module in sorted(third_party_imports(label(steps, "medllama.imports").split())):
        if (ROOT / module).is_dir():  # the repository's own pipelines/ or components/: copied, not installed
            assert any(op == "COPY" and arg.split()[0] == module for op, arg in steps), f"{module}/ not copied"
            continue
        owners = {canonicalize_name(d) for d in to_dists.get(module, [])}
        assert owners, f"{dockerfile.name}: `import {module}`: no installed distribution provides it here"
        if not owners & have:
            missing[module] = sorted(owners)
    return missing


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_image_installs_what_its_code_imports(dockerfile):
    assert not_installed(dockerfile) == {}


def test_a_missing_extra_is_caught(tmp_path):
    trainer = (ROOT / "images" / "trainer.Dockerfile").read_text()
    broken = tmp_path / "trainer.Dockerfile"
    broken.write_text(trainer.replace('".[data,train]"', '".[data]"'))
    assert {"deepspeed", "peft"} <= set(not_installed(broken))


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_image_is_pinned_non_root_healthchecked_and_runs_the_cli(dockerfile):
    steps = instructions(dockerfile)
    base = next(arg for op, arg in steps if op == "FROM")
    assert re.search(r":[\w.-]+$", base) and not base.endswith(":latest"), f"unpinned base {base}"
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "must end as a non-root user"
    assert users[-1].split(":")[0] == "1000"  # medllama.cluster.RUN_AS_USER: the pods' runAsUser
    health = [arg for op, arg in steps if op == "HEALTHCHECK"]
    assert health and health[-1].upper() != "NONE"
    assert [arg for op, arg in steps if op == "ENTRYPOINT"] == ['["medllama"]']
    for op, arg in steps:
        if op in ("ENV", "ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)\w*=", arg, re.I), f"{op} {arg}: a secret"
    from tests.k8s.manifests import cli_verbs

    for verb in label(steps, "medllama.verbs").split():  # each verb the image is for exists in the CLI
        assert verb in cli_verbs(), verb


def test_images_are_the_profiles_images():
    from medllama.cluster import PROFILES_DIR, load_profile

    titles = {re.search(r'image.title="([^"]+)"', p.read_text())[1] for p in IMAGES}
    for path in PROFILES_DIR.glob("*.yaml"):
        images = load_profile(path).images
        for ref in (images.trainer, images.serve, images.gate):
            assert ref.rsplit("/", 1)[-1].split(":")[0] in titles
