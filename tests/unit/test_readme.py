"""The README's topic table is the one topics.yaml generates, its roles table the gateway's access table."""
from agents import config
from agents.catalog import catalog, markdown_table
from api.routes import roles_table


def test_the_readme_lists_the_topics_of_topics_yaml():
    readme = (config.PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- topics:start -->\n", 1)[1].split("\n<!-- topics:end -->", 1)[0]
    assert embedded == markdown_table(catalog()), "run `bread topics --markdown` and paste it into the README"


def test_the_readme_shows_the_gateways_access_table():
    readme = (config.PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- roles:start -->\n", 1)[1].split("\n<!-- roles:end -->", 1)[0]
    assert embedded == roles_table(), "run `bread roles` and paste it into the README"
