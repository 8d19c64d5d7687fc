"""The package and the suite type-check under mypy --strict, keep signatures for users, and are ruff-clean.

Whole-tool runs, hence slow (``pytest -m "not slow"`` leaves them out; the README's command runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


pytestmark = pytest.mark.slow


def test_mypy_strict_on_the_package_and_the_example() -> None:
    result = run("mypy", "--strict", "asynctools", "example")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_tests() -> None:
    # As users' typed code is checked: fixtures, helpers and every call into the package annotated.
    result = run("mypy", "--strict", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_decorated_methods_keep_their_signatures_for_type_checkers() -> None:
    result = run("mypy", "--strict", "tests/typing/usage.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_notices_a_wrong_call(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        (ROOT / "tests/typing/usage.py")
        .read_text()
        .replace("  # type: ignore[arg-type]", "")
        .replace("  # type: ignore[assignment]", "")
    )
    result = run("mypy", "--strict", str(wrong))
    assert result.returncode == 1
    assert 'Argument 1 to "text" of "Api" has incompatible type "int"; expected "str"' in result.stdout
    assert 'Argument "base_url" to "GitHub" has incompatible type "int"' in result.stdout
    # A str class attribute is flagged (instances hold a URL): the docs say to use the class keyword.
    assert 'base class "AbstractSessionContainer" defined the type as "URL | None"' in result.stdout


def test_ruff_check_and_format() -> None:
    check = run("ruff", "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
