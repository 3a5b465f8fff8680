"""The README's topic table is the one topics.yaml generates."""
from agents import config
from agents.catalog import catalog, markdown_table


def test_the_readme_lists_the_topics_of_topics_yaml():
    readme = (config.PROJECT_ROOT / "README.md").read_text()
    embedded = readme.split("<!-- topics:start -->\n", 1)[1].split("\n<!-- topics:end -->", 1)[0]
    assert embedded == markdown_table(catalog()), "run `bread topics --markdown` and paste it into the README"
