"""outputs/NAME/index.html and a card page per map, built only from manifest.json.

Static HTML and inline CSS, no script and nothing from outside: the page works from
file:// with no server. Re-running a command updates its manifest entries; rebuilding
the page then shows them, and nothing else is lost.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from cnnviz.atomic import write_text
from cnnviz.errors import CnnvizError
from cnnviz.manifest import recover_manifest
from cnnviz.layout import CARDS_DIR, card_file
from cnnviz.names import counted, slug
from cnnviz.render.parallel import map_behind
from cnnviz.render.cards import CardSources, MapCard, find_sources, write_card_images
from cnnviz.techniques import TECHNIQUES

INDEX_FILE = "index.html"
COMMAND_ORDER = tuple(t.name for t in TECHNIQUES)  # the registry's order (cnnviz.techniques)
COMMAND_TITLES = {t.name: t.title for t in TECHNIQUES}
AFTER_LAYERS = {t.name: t.title for t in TECHNIQUES if t.section == "after"}  # own sections
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
LEAD_KINDS = ("curves", "patterns", "kernels", "compare-summary", "compare-similarity")
SECTION_TITLES = {"kernel": "Kernel", "pattern": "Best input pattern",
                  "evolution": "Evolution of the pattern", "top": "Top dataset examples",
                  "samples": "Output on one image per class", "training": "Over training"}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
header,main,nav.layers{max-width:1200px;margin:0 auto;padding:0 20px}
header{padding-top:18px}h1{margin:.2em 0}h2{border-bottom:2px solid #d5dae1;padding-bottom:4px;margin-top:1.8em}
h3{margin:1.2em 0 .4em;color:#3b4654}
nav.layers{position:sticky;top:0;background:#f6f7f9;padding-top:6px;padding-bottom:6px;z-index:1}
nav.layers a{margin-right:12px}a{color:#1f5fbf}
table{border-collapse:collapse;background:#fff;margin:8px 0}td,th{border:1px solid #d5dae1;padding:3px 9px;text-align:left}
td.num{text-align:right}.summary p{margin:.15em 0}
.grid{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;background:#fff;border:1px solid #d5dae1;padding:8px;max-width:100%}
figure img{display:block;max-width:min(100%,1160px);width:auto;height:auto}
details summary{cursor:pointer;font-size:13px;color:#4b5663}
section{scroll-margin-top:44px}figcaption{font-size:13px;color:#4b5663;max-width:560px}
.maps a{display:inline-block;min-width:2.4em;text-align:center;margin:2px;padding:2px 4px;background:#fff;border:1px solid #d5dae1}
.files li{font-size:13px}
.card img.px{image-rendering:pixelated;image-rendering:crisp-edges;width:100%;height:auto}
.card img.kernel,.card img.pattern{max-width:360px}
main.card{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,380px),1fr));gap:14px;align-items:start}
.card section{background:#fff;border:1px solid #d5dae1;padding:4px 12px 8px;min-width:0}
.card section.wide{grid-column:1/-1}.card section.wide img.px{width:auto;max-width:100%}
section.after figure img{max-width:min(100%,380px)}
section.after .grid figure{flex:0 1 400px}
.pager a{margin-right:18px}
figure.series input{width:min(100%,520px)}figure.series output{margin-left:8px;font-variant-numeric:tabular-nums}
"""
SERIES_KINDS = ("epochs-frame",)  # one figure per epoch: shown as one figure with a slider
CARD_KINDS = ("epochs-map",)  # one map's figure: shown on its card, not in the layer's grid
# the slider's whole script (plain JavaScript, offline): swap the picture and the label
STEP = ("var f=JSON.parse(this.dataset.frames)[this.value],g=this.closest('figure');"
        "g.querySelector('img').src=f[0];g.querySelector('a').href=f[0];"
        "g.querySelector('img').alt=f[1];g.querySelector('output').textContent=f[1]")


@dataclass(frozen=True)
class Site:
    """What a build wrote."""

    index: Path
    entries: int
    cards: int
    missing: list[str]   # manifest entries whose file no longer exists (left off the page)
    recovered: bool      # the manifest was rebuilt from the files on disk
    dropped: list[str] = field(default_factory=list)  # entries pointing outside the folder


def build_site(folder: Path) -> Site:
    """Write folder/index.html and folder/cards/ from folder/manifest.json."""
    if not folder.is_dir():
        raise CnnvizError(f"no gallery folder {folder}; run a probe command (or `cnnviz atlas`) first")
    manifest, recovered = recover_manifest(folder)
    root, entries, missing, dropped = folder.resolve(), [], [], list(manifest.get("dropped", []))
    for e in manifest["entries"]:
        path = folder / e["path"]
        if not path.resolve().is_relative_to(root):  # e.g. through a link
            dropped.append(e["path"])
        elif path.is_file():
            entries.append({**e, "tall": True} if _tall(path) else e)
        else:
            missing.append(e["path"])
    model = manifest.get("model") or {}
    classes = [str(c) for c in model.get("classes") or range(10)]
    sources = find_sources(folder, entries)
    cards = _write_cards(folder, sources, classes, model)
    page = _index_page(folder.name, model, entries, cards, manifest.get("updated", ""))
    try:
        write_text(folder / INDEX_FILE, page)
    except OSError as exc:
        raise CnnvizError(f"cannot write {folder / INDEX_FILE}: {exc.strerror or exc}") from None
    return Site(folder / INDEX_FILE, len(entries), sum(len(c) for c in cards.values()), missing,
                recovered, dropped)


def layer_order(model: dict, entries: list[dict], extra: list[str]) -> list[str]:
    """Layers in network order (from the model card), then any others the entries name."""
    names = [row["name"] for row in model.get("layers", [])]
    names += [e["layer"] for e in entries if e.get("layer")] + extra
    return list(dict.fromkeys(names))


def _write_cards(folder: Path, sources: CardSources, classes: list[str],
                 model: dict) -> dict[str, list[MapCard]]:
    """Cards are built in a fresh folder and swapped in whole, so a failed build leaves the
    previous cards intact."""
    final, fresh = folder / CARDS_DIR, folder / f".{CARDS_DIR}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    cards: dict[str, list[MapCard]] = {}
    try:
        fresh.mkdir()
        layers = [n for n in layer_order(model, [], sources.layers()) if n in sources.layers()]
        made = map_behind(write_card_images, [(sources.only(n), n, fresh / slug(n) / "img",
                                               classes) for n in layers],
                          [sources.count(n) for n in layers])  # with the atlas's worker
        for layer, found in zip(layers, made):
            cards[layer] = found
            for card in cards[layer]:
                write_text(fresh / slug(layer) / card_file(card.index),
                           _card_page(folder.name, card, len(cards[layer]), classes,
                                      _unit(model, layer)))
        old = folder / f".{CARDS_DIR}-old-{uuid.uuid4().hex[:6]}"
        if final.exists():
            os.replace(final, old)
        os.replace(fresh, final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise CnnvizError(f"cannot write the map cards under {folder}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(fresh)
    return cards


def _index_page(name: str, model: dict, entries: list[dict], cards: dict[str, list[MapCard]],
                updated: str) -> str:
    layers = layer_order(model, entries, list(cards))
    general = [e for e in entries if not e.get("layer") and e.get("command") not in AFTER_LAYERS]
    after = {c: [e for e in entries if not e.get("layer") and e.get("command") == c]
             for c in AFTER_LAYERS}
    after = {c: found for c, found in after.items() if found}
    nav = "".join(f'<a href="#{_anchor(n)}">{_e(n)}</a>' for n in layers) + "".join(
        f'<a href="#{c}">{_e(AFTER_LAYERS[c].split(" ")[0].lower())}</a>' for c in after)
    checked = "".join(f'<p class="verified">{_e(e.get("caption", ""))}</p>' for e in entries
                      if e.get("kind") == "verify-summary")
    body = [f"<header><h1>cnnviz · {_e(name)}</h1>{_summary(model)}{checked}"
            f"<p><small>updated {_e(updated)} · {len(entries)} files</small></p></header>",
            f'<nav class="layers"><a href="#model">model</a>{nav}</nav>', "<main>",
            '<section id="model"><h2>Model</h2>', _layer_table(model), _gallery(general),
            "</section>"]
    for layer in layers:
        mine = [e for e in entries if e.get("layer") == layer]
        body.append(f'<section id="{_anchor(layer)}"><h2>{_e(layer)}</h2>')
        row = next((r for r in model.get("layers", []) if r["name"] == layer), None)
        if row:
            body.append(f"<p>{_e(row['kind'])}, output {_e(row['shape'])}, "
                        f"{row['params']:,} parameters, receptive field {_e(row['field'])}</p>")
        if layer in cards:
            unit = _unit(model, layer)
            links = "".join(f'<a href="{_url(CARDS_DIR, slug(layer), card_file(c.index))}" '
                            f'title="{_e(layer)} {unit} {c.index}">{_e(layer)} · {c.index}</a>'
                            for c in cards[layer])
            body.append(f'<h3>{unit.capitalize()} cards</h3><p class="maps">{links}</p>')
        body.append(_gallery(mine) if mine else "<p>No galleries for this layer yet.</p>")
        body.append("</section>")
    for command, found in after.items():
        body.append(f'<section id="{command}" class="after"><h2>{_e(AFTER_LAYERS[command])}</h2>'
                    f"{_gallery(found, titles=False)}</section>")
    body.append("</main>")
    return _document(f"cnnviz · {name}", "\n".join(body))


def _summary(model: dict) -> str:
    lines = model.get("summary") or []
    return '<div class="summary">' + "".join(f"<p>{_e(line)}</p>" for line in lines) + "</div>"


def _layer_table(model: dict) -> str:
    rows = model.get("layers") or []
    if not rows:
        return "<p>No architecture recorded (run a probe command to add it).</p>"
    head = ("<tr><th>layer</th><th>kind</th><th>output shape</th><th>parameters</th>"
            "<th>receptive field</th></tr>")
    body = "".join(f'<tr><td><a href="#{_anchor(r["name"])}">{_e(r["name"])}</a></td>'
                   f"<td>{_e(r['kind'])}</td><td>{_e(r['shape'])}</td>"
                   f'<td class="num">{r["params"]:,}</td><td>{_e(r["field"])}</td></tr>'
                   for r in rows)
    total = model.get("parameters")
    foot = f"<p>{total:,} parameters in all.</p>" if total is not None else ""
    return f"<table>{head}{body}</table>{foot}"


def _gallery(entries: list[dict], titles: bool = True) -> str:
    """Figures by command, then the other files as links."""
    out = []
    commands = sorted({e.get("command") or "other" for e in entries},
                      key=lambda c: (COMMAND_ORDER.index(c) if c in COMMAND_ORDER else 99, c))
    for command in commands:
        mine = [e for e in entries if (e.get("command") or "other") == command]
        images = sorted((e for e in mine if e["path"].lower().endswith(IMAGE_SUFFIXES)),
                        key=lambda e: e.get("kind") not in LEAD_KINDS)  # stable: the main figure first
        files = [e for e in mine if e not in images]
        frames = [e for e in images if e.get("kind") in SERIES_KINDS]
        images = [e for e in images if e not in frames and e.get("kind") not in CARD_KINDS]
        if titles:
            out.append(f"<h3>{_e(COMMAND_TITLES.get(command, command))}</h3>")
        if images or frames:
            out.append('<div class="grid">' + "".join(_figure(e) for e in images)
                       + (_series(frames) if frames else "") + "</div>")
        if files:
            out.append('<ul class="files">' + "".join(
                f'<li><a href="{_url(e["path"])}">{_e(e["path"])}</a> — '
                f'{_e(e.get("caption") or "")}</li>' for e in files) + "</ul>")
    return "\n".join(out)


def _figure(e: dict) -> str:
    """One figure of the page; a very tall one (a column of every map) folded away, so the
    page stays a few screens per layer."""
    caption = _e(e.get("caption") or e["path"])
    image = (f'<a href="{_url(e["path"])}"><img src="{_url(e["path"])}" alt="{caption}"></a>')
    if e.get("tall"):
        return (f"<figure><details><summary>{caption} (tall: click to show)</summary>{image}"
                "</details></figure>")
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def _series(frames: list[dict]) -> str:
    """Frames of one series (one per epoch) as one figure with a slider, at the last."""
    frames = sorted(frames, key=lambda e: e.get("epoch", 0))
    pairs = [[_url(e["path"]), e.get("caption") or e["path"]] for e in frames]
    last = pairs[-1]
    data = _e(json.dumps(pairs))
    return (f'<figure class="series"><a href="{last[0]}"><img src="{last[0]}" alt="{_e(last[1])}">'
            f'</a><figcaption><input type="range" min="0" max="{len(pairs) - 1}" '
            f'value="{len(pairs) - 1}" aria-label="epoch" data-frames="{data}" '
            f'oninput="{_e(STEP)}"><output>{_e(last[1])}</output></figcaption></figure>')


def _tall(path: Path) -> bool:
    """Whether an image is over 2.5 times as tall as wide (read from its header only)."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        return False
    return height > 2.5 * width


def _card_page(gallery: str, card: MapCard, count: int,
               classes: list[str], unit: str = "map") -> str:
    layer, m = card.layer, card.index
    back = f'../../{INDEX_FILE}#{_anchor(layer)}'
    pager = [f'<a href="{back}">↑ {_e(layer)}</a>']
    if m > 0:
        pager.append(f'<a href="{card_file(m - 1)}" rel="prev">← {_e(layer)} {m - 1}</a>')
    if m + 1 < count:
        pager.append(f'<a href="{card_file(m + 1)}" rel="next">{_e(layer)} {m + 1} →</a>')
    parts = [f"<header><h1>{_e(layer)} · {unit} {m}</h1>"
             f'<p class="pager">{"".join(pager)}</p></header><main class="card">']
    for section, title in SECTION_TITLES.items():
        if section not in card.images:
            continue
        wide = ' class="wide"' if section in ("top", "samples", "training") else ""
        parts.append(f"<section{wide}><h3>{title}</h3>")
        parts.append(f'<img class="px {section}" src="{_url(card.images[section])}" '
                     f'alt="{title} of {_e(layer)} {unit} {m}: {_e(card.captions[section])}">'
                     f"<p><small>{_e(card.captions[section])}</small></p></section>")
    if card.stats:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in card.stats.items())
        parts.append(f"<section><h3>Statistics</h3><table>{rows}</table></section>")
    if card.class_means:
        top = max(card.class_means) or 1.0
        rows = "".join(f'<tr><th>{_e(classes[c] if c < len(classes) else c)}</th>'
                       f'<td class="num">{v:.3g}</td><td><span style="display:inline-block;'
                       f'height:10px;width:{max(0.0, v / top) * 160:.0f}px;background:#3b7dd8"></span></td></tr>'
                       for c, v in enumerate(card.class_means))
        parts.append(f"<section><h3>Mean output per class</h3><table>{rows}</table></section>")
    if len(parts) == 1:
        parts.append(f"<p>Nothing is known about this {unit} yet.</p>")
    parts.append("</main>")
    return _document(f"{layer} {unit} {m} · {gallery}", "\n".join(parts))


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _unit(model: dict, layer: str) -> str:
    """`map` for layers with spatial output (h x w x maps), `unit` for dense layers."""
    row = next((r for r in model.get("layers", []) if r["name"] == layer), None)
    return "map" if row is None or row["shape"].count("x") >= 2 else "unit"


def _anchor(layer: str) -> str:
    return "layer-" + slug(layer)


def _url(*parts: str) -> str:
    return "/".join(quote(p) for part in parts for p in part.split("/"))


def _e(value) -> str:
    return html.escape(str(value))


def build_page(folder: Path, say: Callable[[str], None]) -> Path:
    """Build folder/index.html and its map cards from the manifest; say where it is and what
    it could not show."""
    site = build_site(folder)
    for line in site_lines(site, folder):
        say(line)
    return site.index


def site_lines(site, folder: Path) -> list[str]:
    """Where the page is, and what it could not show."""
    lines = []
    if site.recovered:
        lines.append(f"note: {folder / 'manifest.json'} was missing or corrupt; rebuilt it from "
                     f"the {counted(site.entries, 'file')} on disk")
    if site.dropped:
        lines.append(f"note: {len(site.dropped)} manifest entries point outside {folder} (e.g. "
                     f"{site.dropped[0]}); dropped")
    if site.missing:
        lines.append(f"note: {counted(len(site.missing), 'file')} listed in the manifest no "
                     f"longer exist (e.g. {site.missing[0]}); left off the page")
    lines.append(f"page: {site.index} ({counted(site.entries, 'file')}, "
                 f"{counted(site.cards, 'map card')}); open it in a browser, no server needed")
    return lines
