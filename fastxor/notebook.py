"""How results show themselves in Jupyter: a compact text repr and an HTML
one (a map as its image).

Why: a dataclass's default repr prints every per-network array (a
``Landscape`` holds N x P x P Hessians), which floods a notebook cell; the
summary is what a researcher wants to see.
"""
import base64
import html
import io


def text_repr(name, summary):
    """``Name(\\n<summary>\\n)``: what ``repr`` shows."""
    return f"{name}(\n{summary}\n)"


def html_repr(name, summary, png=None):
    """The summary as preformatted HTML under the object's name, with an
    image above it when ``png`` (bytes) is given."""
    image = ""
    if png:
        image = f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" style="max-width:640px"/><br/>'
    return f"<div><b>fastxor.{name}</b><br/>{image}<pre>{html.escape(summary)}</pre></div>"


def png_of(plot):
    """PNG bytes of ``plot(path)`` (a fastxor figure), or None without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    buf = io.BytesIO()
    plot(buf)
    return buf.getvalue()
