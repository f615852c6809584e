"""The README stands alone and its FakeProvider snippet runs as shown."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_stands_alone() -> None:
    text = README.read_text()
    assert "../shared" not in text
    assert "DESIGN.md" not in text


def test_readme_fake_provider_snippet_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    (snippet,) = [b for b in blocks if "FakeProvider()" in b and "openai.OpenAI(" in b]
    lines = snippet.splitlines()
    indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
    exec(compile("\n".join(x[indent:] for x in lines), "README.md", "exec"), {})
