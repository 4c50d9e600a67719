"""The explorer page in a real browser: headless Chromium opens the page of a tiny model of each
family, a real mouse hovers a token and clicks, and the test reads what the page shows.

Skipped only when no Chromium binary is installed (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import pytest

from aiayn.visualize.explorer import explore
from aiayn.visualize.explorer_page import page_data, save_exploration
from chromium import Chromium, find_chromium
from explorer_models import all_dirs

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium binary (apt-get install chromium)"
)
THRESHOLD = 0.01  # the page's: lines for weights below it are not drawn


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """{family: (page path, the data the page holds)}."""
    root = tmp_path_factory.mktemp("browser")
    out = {}
    for family, (directory, kwargs) in all_dirs(root).items():
        exploration = explore(directory, **kwargs)
        save_exploration(exploration, root / f"{family}_out")
        out[family] = (root / f"{family}_out" / "attention.html", page_data(exploration))
    return out


@pytest.fixture(scope="module")
def browser():
    with Chromium.launch() as b:
        yield b


def lines_drawn(page) -> list[dict]:
    return page.evaluate(
        "[...document.querySelectorAll('#head-svg line.attn')].map(l => ({"
        "head: +l.dataset.head, query: +l.dataset.query, key: +l.dataset.key,"
        "weight: +l.dataset.weight, opacity: +l.getAttribute('stroke-opacity'),"
        "colour: l.getAttribute('stroke')}))"
    )


def expected_lines(weights, layer: int, query: int, heads) -> set[tuple[int, int]]:
    """(head, key) of every weight of `query` at or above the threshold."""
    return {(h, s) for h in heads for s, w in enumerate(weights[layer][h][query]) if w >= THRESHOLD}


@pytest.mark.parametrize("family", ["translation", "lm", "bert", "vit", "poolformer"])
def test_hovering_a_token_draws_its_attention_by_head(browser, pages, family):
    path, data = pages[family]
    page = browser.open(path)
    assert page.errors() == []
    kind = data["kinds"][0]
    weights, H = kind["weights"], len(kind["weights"][0])
    query = len(kind["queries"]) // 2  # a middle token: weights of many magnitudes
    x, y = page.center(f'#head-svg text.query[data-index="{query}"]')
    page.mouse_move(x, y)  # a real mouse event: the page's mouseenter handler runs
    assert page.evaluate("document.querySelector('#head-svg text.active').dataset.index") == str(
        query
    )
    drawn = lines_drawn(page)
    assert {(d["head"], d["key"]) for d in drawn} == expected_lines(weights, 0, query, range(H))
    assert len(drawn) == len(expected_lines(weights, 0, query, range(H)))
    for d in drawn:
        assert d["query"] == query
        assert d["opacity"] == pytest.approx(weights[0][d["head"]][query][d["key"]], abs=1e-4)
    assert len({d["colour"] for d in drawn}) == len({d["head"] for d in drawn})  # by head

    if H > 1:  # switching a head off removes its lines
        box = page.center('input.head-toggle[data-head="0"]')
        page.click(*box)
        page.mouse_move(x, y)
        drawn = lines_drawn(page)
        assert {(d["head"], d["key"]) for d in drawn} == expected_lines(
            weights, 0, query, range(1, H)
        )

    page.mouse_move(1, 1)  # leaving the token: every query's lines again, none highlighted
    assert page.evaluate("document.querySelectorAll('#head-svg text.active').length") == 0
    assert {d["query"] for d in lines_drawn(page)} == set(range(len(kind["queries"])))


@pytest.mark.parametrize("family", ["translation", "vit"])
def test_clicking_a_thumbnail_enlarges_it(browser, pages, family):
    path, data = pages[family]
    page = browser.open(path)
    kind = data["kinds"][0]
    L, H = len(kind["weights"]), len(kind["weights"][0])
    assert page.evaluate("document.querySelectorAll('#model-grid canvas.thumb').length") == L * H
    assert not page.evaluate("document.getElementById('zoom').classList.contains('open')")
    selector = f'canvas.thumb[data-layer="{L - 1}"][data-head="{H - 1}"]'
    page.click(*page.center(selector))
    assert page.evaluate("document.getElementById('zoom').classList.contains('open')")
    title = page.evaluate("document.getElementById('zoom-title').textContent")
    assert f"layer {L}, head {H}" in title
    thumb = page.evaluate(f"document.querySelector('{selector}').getBoundingClientRect().width")
    big = page.evaluate("document.getElementById('zoom-canvas').getBoundingClientRect().width")
    assert big > 2 * thumb


def test_translation_shows_every_kind_and_the_beam_tree(browser, pages):
    path, data = pages["translation"]
    page = browser.open(path)
    parity = page.evaluate("document.getElementById('parity').textContent")
    assert "reference (math) path" in parity and "fast (SDPA) pass" in parity
    titles = page.evaluate("[...document.querySelectorAll('#kind option')].map(o => o.text)")
    assert titles == [k["title"] for k in data["kinds"]] and len(titles) == 3
    page.evaluate("(() => { const s = document.getElementById('kind'); s.value = '2';"
                  " s.dispatchEvent(new Event('change')); })()")  # fmt: skip
    keys = page.evaluate(
        "[...document.querySelectorAll('#head-svg text.key')].map(t => t.textContent)"
    )
    assert keys == data["kinds"][2]["keys"]  # cross-attention: the source on the right
    nodes = page.evaluate(
        "[...document.querySelectorAll('#beam-tree .node')].map(n => n.dataset.status)"
    )
    assert len(nodes) == len(data["beam"]) and nodes.count("winner") == 1
    assert page.evaluate("document.getElementById('why-won').textContent").startswith(
        "Why the winner won: highest score"
    )
    assert page.errors() == []


def test_vision_shows_the_rollout_over_the_image(browser, pages):
    path, data = pages["vit"]
    page = browser.open(path)
    shown = "getComputedStyle(document.getElementById('rollout-section')).display"
    assert page.evaluate(shown) != "none"
    size = data["image"]["size"] * (224 // data["image"]["size"])
    assert page.evaluate("document.getElementById('overlay').width") == size
    assert page.evaluate("document.querySelectorAll('#patch-maps canvas').length") == 2  # layers
    page = browser.open(pages["poolformer"][0])  # pooling: no attention to roll out
    assert page.evaluate(shown) == "none"
    assert page.errors() == []
