"""HTML of the report site: one stylesheet and one small sorting script, both inline (the site
fetches nothing at view time), real tables, a layout that reads on a phone."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

CSS = """
:root { --fg: #1b1f24; --muted: #5c6670; --line: #d8dde3; --bg: #fff; --alt: #f5f7f9; --accent: #1f5fa8;
        --pub: #fbf6e6; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { background: #0f2740; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; align-items: baseline; }
header a { color: #fff; text-decoration: none; } header a:hover { text-decoration: underline; }
header .brand { font-weight: 700; font-size: 1.05rem; }
main { padding: .8rem 1rem 2rem; }
h1 { font-size: 1.35rem; margin: .4rem 0 .6rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
a { color: var(--accent); }
p, li { max-width: 72ch; } .muted { color: var(--muted); font-size: .88rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; font-size: .86rem; font-variant-numeric: tabular-nums; width: max-content; min-width: 100%; }
th, td { padding: .3rem .45rem; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; white-space: nowrap; }
th { background: var(--alt); font-weight: 600; position: sticky; top: 0; }
th:first-child, td:first-child { text-align: left; position: sticky; left: 0; background: var(--bg); z-index: 1; }
th:first-child { background: var(--alt); z-index: 2; }
td.text, th.text { text-align: left; white-space: normal; min-width: 12ch; max-width: 52ch; }
tr.published td { background: var(--pub); } tr.published td:first-child { background: var(--pub); }
th.sortable { cursor: pointer; user-select: none; } th.sortable::after { content: " \\2195"; color: var(--muted); font-weight: 400; }
th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); } th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
.sd { display: block; color: var(--muted); font-size: .75rem; }
.flag { color: #8a5a00; font-weight: 700; cursor: help; } .failed { color: var(--bad); font-weight: 600; }
.badge { display: inline-block; font-size: .72rem; padding: 0 .35rem; border-radius: 3px; background: #e8edf3; color: var(--muted); }
.badge.pub { background: #f3e2a6; color: #5a4300; }
figure { margin: .8rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .85rem; }
details { margin: .3rem 0; } summary { cursor: pointer; color: var(--accent); }
pre { background: var(--alt); padding: .5rem; overflow-x: auto; font-size: .78rem; max-width: 100%; }
.notice { border-left: 4px solid #c98a00; background: #fff8e6; padding: .5rem .8rem; margin: .8rem 0; max-width: 90ch; }
.notice.bad { border-color: var(--bad); background: #fdeeee; }
ul.cols { columns: 14rem; padding-left: 1.2rem; }
.gain { color: #1f5fa8; } .loss { color: #b35900; } .gain.sure, .loss.sure { font-weight: 700; }
@media (max-width: 600px) { body { font-size: 14px; } main { padding: .5rem .5rem 1.5rem; } th, td { padding: .25rem .3rem; } }
"""

# Sort a table by a column when its header is clicked: numbers by value (cells without one last),
# text alphabetically; a second click reverses. Values come from data-sort when a cell has one.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    if (!th.classList.contains("sortable")) return;
    th.tabIndex = 0;
    function sort() {
      var desc = th.getAttribute("aria-sort") !== "descending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
        var num = parseFloat(raw);
        return isNaN(num) ? raw.toLowerCase() : num;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var xs = typeof x === "string", ys = typeof y === "string";
        if (xs !== ys) return xs ? 1 : -1;
        if (x === y) return 0;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
  });
});
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Raw:
    """Markup that is already HTML (built with `esc` from data)."""

    html: str


@dataclass(frozen=True)
class Td:
    content: str | Raw
    sort: float | str | None = None
    cls: str = ""
    title: str = ""

    def render(self, tag: str = "td") -> str:
        attrs = ""
        if self.sort is not None:
            attrs += f' data-sort="{esc(self.sort)}"'
        if self.cls:
            attrs += f' class="{esc(self.cls)}"'
        if self.title:
            attrs += f' title="{esc(self.title)}"'
        inner = self.content.html if isinstance(self.content, Raw) else esc(self.content)
        return f"<{tag}{attrs}>{inner}</{tag}>"


Cell = str | Raw | Td


def runs(n: int) -> str:
    """'1 run', '2 runs': how many runs a page or table holds."""
    return f"{n} run{'' if n == 1 else 's'}"


def _td(cell: Cell) -> Td:
    return cell if isinstance(cell, Td) else Td(cell)


def table(header: Sequence[Cell], rows: Sequence[Sequence[Cell]], *, sortable: bool = False, row_classes: Sequence[str] = (),
          table_id: str = "", caption: str = "") -> str:
    """A real table in a horizontally scrolling box (wide tables stay readable on a phone)."""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    cls = ' class="sortable"' if sortable else ""
    head_cells = []
    for cell in header:
        td = _td(cell)
        if sortable:
            td = Td(td.content, td.sort, (td.cls + " sortable").strip(), td.title)
        head_cells.append(td.render("th"))
    body = []
    for i, row in enumerate(rows):
        rc = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        body.append(f'<tr{f" class={chr(34)}{esc(rc)}{chr(34)}" if rc else ""}>' + "".join(_td(c).render() for c in row) + "</tr>")
    cap = f"<caption class=\"muted\">{esc(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table{ident}{cls}>{cap}<thead><tr>{"".join(head_cells)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def link(href: str, text: str) -> Raw:
    return Raw(f'<a href="{esc(href)}">{esc(text)}</a>')


def figure(src: str, caption: str, alt: str) -> str:
    return f'<figure><img src="{esc(src)}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def notice(text: str, bad: bool = False) -> str:
    return f'<div class="notice{" bad" if bad else ""}">{esc(text)}</div>'


def page(title: str, body: str, nav: Sequence[tuple[str, str]], generated: str, sort: bool = False) -> str:
    links = "".join(f'<a href="{esc(href)}">{esc(text)}</a>' for href, text in nav)
    script = f"<script>{SORT_JS}</script>" if sort else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">"
            f"<title>{esc(title)} · blurbkit report</title><style>{CSS}</style></head><body>"
            f'<header><span class="brand">blurbkit report</span>{links}</header>'
            f"<main><h1>{esc(title)}</h1>{body}<p class=\"muted\">{esc(generated)}</p></main>{script}</body></html>\n")
