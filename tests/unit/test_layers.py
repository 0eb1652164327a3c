"""Who may import whom: the layers docs/architecture.md draws, held by the code itself.

Imports are read with `ast` (every `import` and `from ... import`, also inside functions), so a
late import cannot slip past.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("invitations", "commitments", "notifications")
# Pure rules: they must run without a web framework or a database driver.
PURE = ["services/commitments/workflow.py", "services/commitments/calculator.py",
        "services/invitations/domain.py", "shared/platform/errors.py", "shared/contracts/roles.py"]
HEAVY = {"fastapi", "starlette", "asyncpg", "aiokafka", "httpx", "uvicorn"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def offending(folder: str, *forbidden: str) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {name}" for path in modules(folder) for name in sorted(imports(path))
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_the_contracts_depend_on_nothing_else_in_the_project() -> None:
    assert offending("shared/contracts", "shared.platform", "shared.ntbctl", "services", "bench", "tests") == []


def test_the_platform_knows_no_service_and_not_the_operator_tool() -> None:
    assert offending("shared/platform", "shared.ntbctl", "services", "bench", "tests") == []


def test_no_service_imports_the_operator_tool() -> None:
    assert offending("services", "shared.ntbctl") == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another(service: str) -> None:
    others = [f"services.{other}" for other in SERVICES if other != service]
    assert offending(f"services/{service}", *others) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_rules_pull_in_no_web_framework_or_database(module: str) -> None:
    # Transitively: import the module alone in a fresh interpreter and look at what got loaded.
    name = module.removesuffix(".py").replace("/", ".")
    probe = (f"import sys, {name}; heavy = {sorted(HEAVY)!r}; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} pulls in {out.stdout.strip()}"


def test_the_checker_sees_late_and_relative_imports(tmp_path: Path) -> None:
    sample = ROOT / "shared" / "contracts" / "_layers_probe.py"
    sample.write_text("def f():\n    from ..platform import outbox\n    import services.commitments\n")
    try:
        found = imports(sample)
    finally:
        sample.unlink()
    assert {"shared.platform.outbox", "services.commitments"} <= found
