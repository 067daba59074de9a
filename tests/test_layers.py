"""The layer rule, checked on the source: no module imports a layer above its own.

Every module under ``src/ogasearch`` is parsed with ``ast`` (nothing is imported) and each of
its ``ogasearch.*`` imports is collected, module-level and inside functions alike. Layers,
bottom to top (a layer may import any layer below it, and itself):

    settings, progress, budget -> catalog -> crawl -> store -> extract -> tiles -> embed -> index
    -> artmap -> workspace -> match -> provenance -> pipeline -> search -> web -> demo -> cli
    -> __main__

Names on one level are siblings and may not import each other. ``localsite`` (the local copy
of OGA that the tests, the demo and the benchmarks serve) may import only ``settings`` and
itself, and only ``cli`` and ``demo`` import it. ``search`` and ``web`` never import
``ogasearch.pipeline`` or any ``*.stage`` module: queries do not run the pipeline.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import ogasearch

PACKAGE_ROOT = Path(ogasearch.__file__).parent
REPO_ROOT = PACKAGE_ROOT.parent.parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("settings", "progress", "budget"),
    ("catalog",),
    ("crawl",),
    ("store",),
    ("extract",),
    ("tiles",),
    ("embed",),
    ("index",),
    ("artmap",),  # the map of all the art (its stage runs after index)
    ("workspace",),
    ("match",),  # the matcher the search and the provenance stage share
    ("provenance",),  # copies of art across pages (written by its stage, read by search)
    ("pipeline",),
    ("search",),
    ("web",),
    ("demo",),  # ``ogasearch demo``: the local site, the pipeline and the server together
    ("cli",),
    ("__main__",),  # ``python -m ogasearch``: runs the CLI
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
LOCALSITE = "localsite"
LOCALSITE_MAY_IMPORT = frozenset({"settings", LOCALSITE})
LOCALSITE_IMPORTED_BY = frozenset({"cli", "demo", LOCALSITE})
QUERY_SIDE = frozenset({"search", "web"})


@dataclass(frozen=True)
class Import:
    where: str  # the importing file and line, ``src/ogasearch/cli.py:12``
    importer: str  # the importing module, e.g. ``ogasearch.catalog.copy``
    module: str  # the imported module, e.g. ``ogasearch.search.keywords``


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, importer: str, *, is_package: bool, filename: str) -> list[Import]:
    """Every ``ogasearch`` module a source imports, relative imports resolved, at any depth."""
    package = importer if is_package else importer.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *[base][: bool(base)]])
            # ``from ogasearch.embed import stage`` imports ogasearch.embed.stage; a name that
            # is not a module (a function, a class) leaves the package as what is imported.
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _module_path(sub) is not None else base))
    return [
        Import(f"{filename}:{line}", importer, module)
        for line, module in dict.fromkeys(found)  # ``from m import a, b``: m once
        if module == "ogasearch" or module.startswith("ogasearch.")
    ]


def _file_imports(path: Path) -> list[Import]:
    return _imports(
        path.read_text(encoding="utf-8"),
        _module_name(path),
        is_package=path.name == "__init__.py",
        filename=str(path.relative_to(REPO_ROOT)),
    )


def _module_path(module: str) -> Path | None:
    if not module.startswith("ogasearch."):
        return None
    rel = Path(*module.split(".")[1:])
    for candidate in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top(module: str) -> str | None:
    """The top-level name under ``ogasearch`` (``ogasearch.search.keywords`` -> ``search``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _source_files() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def _violation(imp: Import) -> str | None:
    """Why this import breaks the rule, or None."""
    importer = _top(imp.importer)
    imported = _top(imp.module)
    if importer is None or imported is None or importer == imported:
        return None  # the package root (``__version__``), or a package importing itself
    if imported == LOCALSITE:
        if importer in LOCALSITE_IMPORTED_BY:
            return None
        return f"only {', '.join(sorted(LOCALSITE_IMPORTED_BY - {LOCALSITE}))} import localsite"
    if importer == LOCALSITE:
        if imported in LOCALSITE_MAY_IMPORT:
            return None
        return "localsite imports only settings and itself"
    if importer in QUERY_SIDE and (imported == "pipeline" or imp.module.endswith(".stage")):
        return f"{importer} never imports the pipeline or a stage module"
    if LEVEL[imported] > LEVEL[importer]:
        return f"upward: {importer} (level {LEVEL[importer]}) below {imported} ({LEVEL[imported]})"
    if LEVEL[imported] == LEVEL[importer]:
        return f"{importer} and {imported} are siblings on one level"
    return None


def test_every_module_has_a_layer() -> None:
    """A new top-level module or package must be placed in the layer list before it is used."""
    unplaced = sorted(
        {
            f"{_module_name(path)} ({path.relative_to(REPO_ROOT)})"
            for path in _source_files()
            if (top := _top(_module_name(path))) is not None
            and top not in LEVEL
            and top != LOCALSITE
        }
    )
    if unplaced:
        pytest.fail(f"modules in no layer of tests/test_layers.py: {unplaced}", pytrace=False)


def test_imports_are_found_at_any_depth() -> None:
    """The walk sees module-level, function-level and relative imports (a check of the check)."""
    source = (
        "import ogasearch.settings\n"
        "from ogasearch.embed import stage, preprocess\n"
        "from ..search.keywords import rebuild\n"
        "def f() -> None:\n"
        "    from ogasearch.pipeline import update\n"
        "    import json\n"
    )
    found = _imports(source, "ogasearch.catalog.copy", is_package=False, filename="copy.py")
    assert [(i.where, i.module) for i in found] == [
        ("copy.py:1", "ogasearch.settings"),
        ("copy.py:2", "ogasearch.embed.stage"),
        ("copy.py:2", "ogasearch.embed.preprocess"),
        ("copy.py:3", "ogasearch.search.keywords"),
        ("copy.py:5", "ogasearch.pipeline"),
    ]


@pytest.mark.parametrize(
    ("importer", "module", "allowed"),
    [
        ("ogasearch.search.service", "ogasearch.index.base", True),
        ("ogasearch.search.service", "ogasearch.search.keywords", True),
        ("ogasearch.cli", "ogasearch.localsite.server", True),
        ("ogasearch.localsite.app", "ogasearch.settings", True),
        ("ogasearch.catalog.copy", "ogasearch.search.keywords", False),  # upward
        ("ogasearch.settings", "ogasearch.progress", False),  # siblings
        ("ogasearch.web.app", "ogasearch.embed.stage", False),  # a stage, from the query side
        ("ogasearch.search.service", "ogasearch.pipeline", False),
        ("ogasearch.localsite.server", "ogasearch.crawl.markup", False),
        ("ogasearch.pipeline", "ogasearch.localsite.build", False),
    ],
)
def test_the_rule_itself(importer: str, module: str, allowed: bool) -> None:
    verdict = _violation(Import("x.py:1", importer, module))
    assert (verdict is None) == allowed, verdict


def test_no_module_imports_against_the_layers() -> None:
    problems = [
        f"{imp.where} imports {imp.module}: {why}"
        for path in _source_files()
        for imp in _file_imports(path)
        if (why := _violation(imp)) is not None
    ]
    if problems:
        pytest.fail(
            f"{len(problems)} import(s) against the layers:\n" + "\n".join(problems), pytrace=False
        )
