"""The README's topic table is the one topics.yaml generates, its roles table the gateway's access table."""
import re

from agents.catalog import catalog, markdown_table
from agents.settings import PROJECT_ROOT
from api.routes import roles_table
from ops.k8s import settings_table


def test_the_readme_lists_the_topics_of_topics_yaml():
    readme = (PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- topics:start -->\n", 1)[1].split("\n<!-- topics:end -->", 1)[0]
    assert embedded == markdown_table(catalog()), "run `bread topics --markdown` and paste it into the README"


def test_the_readme_shows_the_gateways_access_table():
    readme = (PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- roles:start -->\n", 1)[1].split("\n<!-- roles:end -->", 1)[0]
    assert embedded == roles_table(), "run `bread roles` and paste it into the README"


def test_the_readme_shows_every_setting_as_the_settings_define_it():
    readme = (PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- settings:start -->\n", 1)[1].split("\n<!-- settings:end -->", 1)[0]
    assert embedded == settings_table(), "run `bread settings` and paste it into the README"


def anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_in_the_documentation_leads_somewhere():
    pages = [PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "docs").glob("*.md")]
    assert len(pages) > 1
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if fragment:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: {target}"
