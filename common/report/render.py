"""Report blocks -> Markdown and self-contained HTML. A block is a tuple: ("h1" | "h2" | "h3" | "p", text),
("ul", items), ("table", header, rows) or ("img", src, caption)."""

from __future__ import annotations

import html
from pathlib import Path

CSS = (
    "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;"
    "padding:0 1em;color:#222}h2{border-bottom:1px solid #ddd;margin-top:1.8em}table{border-collapse:collapse;"
    "margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}img{max-width:100%;border:1px solid #ddd}"
    "figcaption{font-size:.85em;color:#555}ul{font-size:.9em}"
)


def to_markdown(blocks: list[tuple]) -> str:
    row = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    render = {
        "h1": lambda t: f"# {t}",
        "h2": lambda t: f"## {t}",
        "h3": lambda t: f"### {t}",
        "p": str,
        "ul": lambda items: "\n".join(f"- {item}" for item in items),
        "table": lambda head, rows: "\n".join([row(head), "|" + "---|" * len(head), *map(row, rows)]),
        "img": lambda src, caption: f"![{Path(src).stem}]({src})\n\n*{caption}*",
    }
    return "\n\n".join(render[kind](*body) for kind, *body in blocks) + "\n"


def to_html(blocks: list[tuple], title: str, base: Path | None = None) -> str:
    """The page; with ``base`` (the folder image paths are relative to) each image is embedded as a
    data URI, so the page shows its images wherever it is served alone (MLflow's artifact viewer
    serves one file, where a relative path resolves to nothing)."""
    e = lambda s: html.escape(str(s))
    src = lambda path: _data_uri(base / path) if base is not None and (base / path).is_file() else e(path)
    row = lambda cells, tag="td": "<tr>" + "".join(f"<{tag}>{e(c)}</{tag}>" for c in cells) + "</tr>"
    render = {
        **{h: (lambda t, h=h: f"<{h}>{e(t)}</{h}>") for h in ("h1", "h2", "h3")},
        "p": lambda t: f"<p>{e(t)}</p>",
        "ul": lambda its: f"<ul>{''.join(f'<li>{e(i)}</li>' for i in its)}</ul>",
        "table": lambda head, rows: f"<table>{row(head, 'th')}{''.join(map(row, rows))}</table>",
        "img": lambda path, caption: (
            f"<figure><img src='{src(path)}' alt='{e(Path(path).stem)}'><figcaption>{e(caption)}</figcaption></figure>"
        ),
    }
    return "\n".join(
        [
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{CSS}</style></head><body>",
            *(render[kind](*body) for kind, *body in blocks),
            "</body></html>",
        ]
    )


def _data_uri(path: Path) -> str:
    import base64
    import mimetypes

    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
