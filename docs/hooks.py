"""MkDocs hooks: the pages that are generated, so that they cannot drift.

* ``index.md`` is the README (one text for the repository and the site),
  with its ``docs/`` links made relative to the site.
* ``cli.md`` is the ``--help`` of every ``fastxor`` command, from the parser
  itself.
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme():
    text = (ROOT / "README.md").read_text()
    return re.sub(r"\]\(docs/", "](", text)


def _commands(parser, prog):
    """(name, parser) of every (sub)command, depth first."""
    yield prog, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prog} {name}")


def _cli():
    from fastxor.cli import parser

    parts = []
    for name, p in _commands(parser(), "fastxor"):
        p.prog = name
        parts.append(f"## `{name}`\n\n```text\n{p.format_help()}```\n")
    return "\n".join(parts)


def on_page_markdown(markdown, page, **kwargs):
    if page.file.src_uri == "index.md":
        return _readme()
    if page.file.src_uri == "cli.md":
        return markdown.replace("<!-- generated from the parser -->", _cli())
    return markdown
