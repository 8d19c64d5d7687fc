"""The README is the PyPI page: its snippets run, its links are absolute and lead somewhere, CI runs it.

The snippets run as the docs' do (tests/test_docs.py: loopback fakes of the APIs they call, the same
runner), and are type-checked there with the docs' snippets. A snippet naming the Redis of its reader
(``redis://localhost:6379/0``) runs against a real redis-server instead (tests/redis_server.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import redis_server_url
from test_docs import README_SNIPPETS, check_snippet, sites  # noqa: F401 (sites is a fixture)

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS_SITE = "https://aiohttp-asynctools.readthedocs.io/en/latest/"
REPOSITORY = "https://github.com/cglacet/aiohttp-sessions-helpers"
RAW = "https://raw.githubusercontent.com/cglacet/aiohttp-sessions-helpers/main/"
REDIS = "redis://localhost:6379/0"  # the reader's Redis, as the recipe names it
FIRST_BLOCK = """\
python3 -m venv .venv && .venv/bin/pip install -e '.[example]' && .venv/bin/python -m example
bash .ci/tools && python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest
"""


def test_the_first_code_block_is_the_checkouts_two_commands() -> None:
    first = re.search(r"```(\w*)\n(.*?)```", README, re.S)
    assert first is not None
    assert first.group(1) == "bash" and first.group(2) == FIRST_BLOCK
    assert README.index("```") < README.index("## Three lines to adopt")  # near the top


def test_ci_runs_the_readmes_test_command() -> None:
    commands = re.search(r"```bash\n(.*?)```", README, re.S)
    assert commands is not None
    test_command = commands.group(1).splitlines()[1]
    assert test_command in (ROOT / ".ci/run").read_text().splitlines()
    assert "pytest" in test_command


def test_it_is_a_pypi_page() -> None:
    """What it is, how to install it, an example, links: short, and nothing PyPI would break."""
    assert README.startswith("# asynctools\n")
    assert "pip install aiohttp-asynctools" in README
    # 180 until the site policies' recipe (issue 11) earned its 30 lines; 190 since the test command says
    # what it needs and costs, and the quick loop is named (issue 24).
    assert 120 <= len(README.splitlines()) <= 190
    assert any("AbstractSessionContainer" in s and "attach_session" in s for _, s in README_SNIPPETS)
    assert "<!-- api:start -->" not in README  # the API reference lives in the docs now
    assert f"**Documentation: {DOCS_SITE.removesuffix('en/latest/')}**" in README
    assert REPOSITORY in README


def links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r"<(https?://[^>]+)>", README)


def test_links_and_images_are_absolute() -> None:
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


def test_every_link_leads_somewhere() -> None:
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


def test_the_recipe_shares_an_hourly_quota_retries_and_caps_concurrency() -> None:
    """The GitHub-like recipe: an hourly quota in Redis, Retry-After honoured, a concurrency cap, a link."""
    (recipe,) = [source for _, source in README_SNIPPETS if "RedisLimit(" in source]
    assert f'RateLimit(5000, per=3600, redis=RedisLimit("{REDIS}"))' in recipe
    assert "retry=Retry(" in recipe and "concurrency=" in recipe and "Retry-After" in recipe
    assert "from_headers=True" in recipe  # GitHub's own quota headers are obeyed
    section = README[README.index("## Recipe") :].split("\n## ", 1)[0]
    assert f"{DOCS_SITE}policies.html" in section and len(section.splitlines()) <= 35


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from redis_server_url(tmp_path_factory)


@pytest.mark.parametrize(("name", "source"), README_SNIPPETS, ids=[name for name, _ in README_SNIPPETS])
async def test_snippet_runs(
    name: str,
    source: str,
    sites: dict[str, str],  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if REDIS not in source:
        await check_snippet(name, source, sites, tmp_path)
        return
    import redis.asyncio

    url = request.getfixturevalue("redis_url")
    await check_snippet(name, source, {**sites, REDIS: url}, tmp_path)
    client = redis.asyncio.from_url(url)
    try:
        # The shared window holds the snippet's requests: the limit was counted in Redis, not in-process.
        assert await client.keys("asynctools*")
    finally:
        await client.aclose()
