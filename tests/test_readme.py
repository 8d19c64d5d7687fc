"""The README is the PyPI page: its snippets run, its links are absolute and lead somewhere, CI runs it.

The snippets run as the docs' do (tests/test_docs.py: loopback fakes of the APIs they call, the same
runner), and are type-checked there with the docs' snippets.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from test_docs import README_SNIPPETS, check_snippet, sites  # noqa: F401 (sites is a fixture)

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS_SITE = "https://aiohttp-asynctools.readthedocs.io/en/latest/"
REPOSITORY = "https://github.com/cglacet/aiohttp-sessions-helpers"
RAW = "https://raw.githubusercontent.com/cglacet/aiohttp-sessions-helpers/main/"
FIRST_BLOCK = """\
python3 -m venv .venv && .venv/bin/pip install -e '.[example]' && .venv/bin/python -m example
python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest
"""


def test_the_first_code_block_is_the_checkouts_two_commands():
    first = re.search(r"```(\w*)\n(.*?)```", README, re.S)
    assert first is not None
    assert first.group(1) == "bash" and first.group(2) == FIRST_BLOCK
    assert README.index("```") < README.index("## Three lines to adopt")  # near the top


def test_ci_runs_the_readmes_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S)
    assert commands is not None
    test_command = commands.group(1).splitlines()[1]
    assert test_command in (ROOT / ".ci/run").read_text().splitlines()
    assert "pytest" in test_command


def test_it_is_a_pypi_page():
    """What it is, how to install it, an example, links: short, and nothing PyPI would break."""
    assert README.startswith("# asynctools\n")
    assert "pip install aiohttp-asynctools" in README
    assert 120 <= len(README.splitlines()) <= 180
    assert any("AbstractSessionContainer" in s and "attach_session" in s for _, s in README_SNIPPETS)
    assert "<!-- api:start -->" not in README  # the API reference lives in the docs now
    assert f"**Documentation: {DOCS_SITE.removesuffix('en/latest/')}**" in README
    assert REPOSITORY in README


def links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r"<(https?://[^>]+)>", README)


def test_links_and_images_are_absolute():
    """PyPI renders the README away from the repository: a relative link or image would be broken there."""
    found = links()
    assert found
    relative = [link for link in found if "://" not in link and not link.startswith("mailto:")]
    assert relative == []
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)
    assert images and all(image.startswith(RAW) for image in images), images


def tracked(paths: list[str]) -> list[str]:
    if not (ROOT / ".git").exists():
        return sorted(paths)
    result = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return sorted(result.stdout.split())


def test_every_link_leads_somewhere():
    """Links into the repository name committed files; links into the docs name pages that exist."""
    files = set()
    for link in links():
        if link.startswith(RAW):
            files.add(link.removeprefix(RAW))
        elif link.startswith(f"{REPOSITORY}/blob/main/"):
            files.add(link.removeprefix(f"{REPOSITORY}/blob/main/"))
        elif link.startswith(DOCS_SITE):
            page = link.removeprefix(DOCS_SITE).split("#")[0].removesuffix(".html")
            assert (ROOT / "docs" / f"{page}.md").is_file(), link
    assert {"benchmarks/results/latest.png", "docs/example-page.png"} <= files
    assert all((ROOT / path).is_file() for path in files), files
    assert tracked(sorted(files)) == sorted(files)  # committed: the raw URLs must find them


@pytest.mark.parametrize(("name", "source"), README_SNIPPETS, ids=[name for name, _ in README_SNIPPETS])
async def test_snippet_runs(name, source, sites, tmp_path):  # noqa: F811 (the fixture imported above)
    await check_snippet(name, source, sites, tmp_path)
