"""The atlas page in real headless Chromium, opened from disk (file://, no server).

Needs Debian's chromium and chromium-driver and the `selenium` package (installed by
.ci/run and the test extra); skips with the reason when they are absent. Set
CNNVIZ_SCREENSHOTS=DIR to keep the screenshots (the README's come from here) and
CNNVIZ_ATLAS=outputs/NAME to check an atlas you built instead of the small test one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="Chromium and ChromeDriver are not installed (apt-get install chromium chromium-driver)")

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1280,900",
                  "--allow-file-access-from-files")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def gallery(request) -> Path:
    if os.environ.get("CNNVIZ_ATLAS"):
        return Path(os.environ["CNNVIZ_ATLAS"]).resolve()
    return request.getfixturevalue("atlas").resolve()


def broken_images(driver) -> list[str]:
    """Sources of the images on the current page that did not load."""
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);")


def screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CNNVIZ_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path)), "no screenshot"
    assert path.stat().st_size > 10_000
    return path


def test_the_page_and_a_map_card_load_every_image(browser, gallery, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get((gallery / "index.html").as_uri())
    assert browser.title.startswith("cnnviz")
    sections = {s.get_attribute("id") for s in browser.find_elements(By.CSS_SELECTOR, "section")}
    assert {"model", "layer-conv1", "layer-conv2", "layer-conv3", "layer-dense1"} <= sections
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 40
    assert broken_images(browser) == []
    assert browser.find_elements(By.CSS_SELECTOR, "section#model table tr")  # architecture table
    screenshot(browser, "atlas-page.png", tmp_path)
    browser.get((gallery / "index.html").as_uri() + "#layer-conv2")
    assert browser.execute_script("return window.scrollY") > 0  # the anchor exists and scrolled
    screenshot(browser, "atlas-layer.png", tmp_path)

    card_link = browser.find_element(By.CSS_SELECTOR, "#layer-conv2 .maps a:nth-child(8)")
    assert card_link.text == "conv2 · 7"  # a link says which map it opens
    card_link.click()
    assert browser.current_url.endswith("cards/conv2/map-007.html")
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h3")]
    assert {"Kernel", "Best input pattern", "Evolution of the pattern", "Top dataset examples",
            "Statistics"} <= set(headings)
    assert broken_images(browser) == []
    alts = [i.get_attribute("alt") for i in browser.find_elements(By.TAG_NAME, "img")]
    assert all("of conv2 map 7" in alt for alt in alts), alts
    # the card uses the width: its sections sit side by side, none narrower than 300 px
    boxes = browser.execute_script(
        "return Array.from(document.querySelectorAll('main.card section'))"
        ".map(s => [s.getBoundingClientRect().left, s.getBoundingClientRect().width]);")
    assert len({round(left) for left, _ in boxes}) >= 2 and min(w for _, w in boxes) >= 300
    screenshot(browser, "atlas-map-card.png", tmp_path)

    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    assert browser.current_url.endswith("map-008.html")
    browser.find_element(By.PARTIAL_LINK_TEXT, "↑ conv2").click()
    assert browser.current_url.endswith("index.html#layer-conv2")


def test_the_why_section_comes_after_the_layers_small_and_in_the_navigation(browser, gallery):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 900)
    browser.get((gallery / "index.html").as_uri())
    tops = browser.execute_script(
        "return Array.from(document.querySelectorAll('main > section'))"
        ".map(s => [s.id, s.getBoundingClientRect().top + window.scrollY]);")
    order = [name for name, _ in tops]
    assert order[0] == "model" and order[-2:] == ["explain", "geometry"], order
    assert all(name.startswith("layer-") for name in order[1:-2])
    assert browser.find_elements(By.CSS_SELECTOR, "nav.layers a[href='#explain']")
    heights = browser.execute_script(
        "return Array.from(document.querySelectorAll('#explain img'))"
        ".map(i => i.getBoundingClientRect().height);")
    assert heights and max(heights) <= 420, heights  # small: ten of them fit a few screens
    height = browser.execute_script("return document.documentElement.scrollHeight")
    print(f"atlas page height at 1400 px: {height} px")
    if not os.environ.get("CNNVIZ_ATLAS"):  # the small test atlas: 60,600 px before the fold
        assert height < 40_000, height
    assert not browser.find_elements(By.CSS_SELECTOR, "section#model img[src*='explain']")


# ---- the live page of `cnnviz serve` ----------------------------------------------------------

def wait_for_answer(driver, after: int, timeout: float = 60) -> None:
    """Until the page has more than `after` answers and nothing is in flight or pending."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "const s = window.cnnviz; return s && s.answers > arguments[0] && !s.inFlight"
        " && !s.pending && !s.scheduled;", after))


def page_arrays(driver) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(the input as fed, every layer's output, the scores) of the page's last answer."""
    from cnnviz.serve.live import decode

    last = driver.execute_script("return window.cnnviz.last")
    layers = {layer["name"]: decode(layer) for layer in last["layers"]}
    return decode(last["input"]), layers, np.asarray(last["prediction"]["scores"])


def test_drawing_on_the_live_page_changes_what_every_layer_shows(browser, live_server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1280, 1400)
    browser.get(live_server.url)
    WebDriverWait(browser, 60).until(lambda d: "draw something" in d.find_element(By.ID, "status").text)
    assert browser.execute_script("return window.cnnviz.answers") == 0  # a blank canvas: no prediction
    assert browser.find_elements(By.CSS_SELECTOR, "#bars .bar") == []
    mosaic = "return document.querySelector('#layer-conv2 canvas').toDataURL()"

    answers = browser.execute_script("return window.cnnviz.answers")
    ink = browser.find_element(By.ID, "ink")
    stroke = ActionChains(browser).move_to_element_with_offset(ink, 0, -90).click_and_hold()
    for _ in range(9):  # a vertical stroke down the middle: a "1"
        stroke = stroke.move_by_offset(2, 20)
    stroke.release().perform()
    wait_for_answer(browser, answers)

    pixels, layers, scores = page_arrays(browser)
    assert pixels.max() == 255 and (pixels > 0).sum() > 20  # the stroke reached the input
    rows, cols = np.nonzero(pixels > 128)
    assert rows.max() - rows.min() + 1 >= 18  # prepared as MNIST's digits: scaled into the box
    assert abs(np.average(np.arange(28), weights=pixels.sum(axis=1)) - 13.5) <= 1  # centred
    assert "MNIST" in browser.find_element(By.ID, "fed-note").text
    bars, top = browser.execute_script(  # read at once: the bars are redrawn on every answer
        "return [document.querySelectorAll('#bars .bar').length,"
        " document.querySelector('#bars .bar.top').dataset.cls];")
    assert bars == 10 and top == str(int(scores.argmax()))
    # the numbers on the page are the library's for the same pixels
    expected = live_server.inspected.activations(pixels[np.newaxis])
    for name, values in layers.items():
        np.testing.assert_allclose(values, expected[name][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, expected.outputs[0], rtol=1e-5, atol=1e-6)
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#explain canvas")) == 2)
    assert browser.find_element(By.ID, "status").text == ""  # no error shown
    screenshot(browser, "serve-page.png", tmp_path)

    # another colour scale redraws the mosaics from the same answer, with no request
    requests = browser.execute_script("return window.cnnviz.requests")
    per_map = browser.execute_script(mosaic)
    browser.find_element(By.CSS_SELECTOR, "input[name=scale][value=layer]").click()
    assert browser.execute_script(mosaic) != per_map
    assert browser.execute_script("return window.cnnviz.requests") == requests

    # an uploaded photo of a dark digit on white is converted as `--input` converts it
    from PIL import Image

    from cnnviz.data import read_image

    photo = tmp_path / "photo.png"
    digit = live_server.inspected.data().split("test")[0][6]
    Image.fromarray(np.kron(255 - digit, np.ones((3, 3), np.uint8))).save(photo)
    answers = browser.execute_script("return window.cnnviz.answers")
    browser.find_element(By.ID, "upload").send_keys(str(photo))
    wait_for_answer(browser, answers)
    uploaded, _, _ = page_arrays(browser)
    assert np.array_equal(uploaded, read_image(photo, digit=True)[0])

    # the mosaics use the width, and each map is reachable from the keyboard and said in words
    width = browser.execute_script("return document.querySelector('#layer-conv2 canvas')"
                                   ".getBoundingClientRect().width")
    room = browser.execute_script("return document.getElementById('layers').clientWidth")
    assert width >= 0.8 * room, (width, room)
    label = browser.find_element(By.CSS_SELECTOR, "#layer-conv2 canvas").get_attribute("aria-label")
    assert label.startswith("conv2: 64 maps of 11×11")
    browser.execute_script("document.querySelector('#layer-conv2 canvas').focus()")
    from selenium.webdriver.common.keys import Keys

    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    said = browser.find_element(By.ID, "map-said").text
    assert said.startswith("conv2 map 1: mean "), said
    conv2 = page_arrays(browser)[1]["conv2"]
    assert f"max {conv2[..., 1].max():.3f}" in said
    browser.set_window_size(390, 900)  # a phone: nothing overflows the window
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"))
    browser.set_window_size(1280, 1400)

    # a test image from the picker, then a click on a map shows the arithmetic of that value,
    # equal to the map's value there, and links the map's card in the atlas
    browser.find_element(By.ID, "sample-index").clear()
    browser.find_element(By.ID, "sample-index").send_keys("4")
    answers = browser.execute_script("return window.cnnviz.answers")
    browser.find_element(By.ID, "sample-load").click()
    wait_for_answer(browser, answers)
    sample_pixels, _, _ = page_arrays(browser)
    assert np.array_equal(sample_pixels, live_server.inspected.data().split("test")[0][4])
    # test image 4 lands on each layer's map exactly on its own dot among the test images
    from cnnviz.serve.live import decode

    maps, placed = browser.execute_script("return [window.cnnviz.maps, window.cnnviz.placed]")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#maps canvas")) == len(maps["layers"]) > 3
    for layer, at in zip(maps["layers"], placed["layers"]):
        assert at["name"] == layer["name"]
        np.testing.assert_allclose(at["at"], decode(layer)[4], rtol=1e-4, atol=1e-4)
    canvas = browser.find_element(By.CSS_SELECTOR, "#layer-conv2 canvas")
    tiles_before = len(browser.window_handles)
    tile, z = browser.execute_script("const t = JSON.parse(arguments[0].dataset.tile); "
                                     "return [t[0], t[4]];", canvas)
    scale = canvas.size["width"] / browser.execute_script("return arguments[0].width", canvas)
    x, y = (tile + 5 * z + z // 2) * scale, (7 * z + z // 2) * scale  # map 1, row 7, column 5
    ActionChains(browser).move_to_element_with_offset(canvas, -canvas.size["width"] // 2 + x,
                                                      -canvas.size["height"] // 2 + y).click().perform()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.getElementById('trace').dataset.at === '7,5'"))
    panel = browser.find_element(By.ID, "trace").get_attribute
    conv2 = page_arrays(browser)[1]["conv2"]
    assert (panel("data-layer"), panel("data-map"), panel("data-ok")) == ("conv2", "1", "true")
    assert abs(float(panel("data-traced")) - conv2[7, 5, 1]) < 1e-5
    assert "Σ patch × kernel over 3×3×32" in browser.find_element(By.ID, "trace-steps").text
    browser.find_element(By.ID, "trace-card").click()
    WebDriverWait(browser, 30).until(lambda d: len(d.window_handles) > tiles_before)
    browser.switch_to.window(browser.window_handles[-1])
    try:
        WebDriverWait(browser, 30).until(lambda d: d.current_url.endswith("/atlas/cards/conv2/map-001.html"))
        assert "live page" in browser.find_element(By.TAG_NAME, "body").text
        assert broken_images(browser) == []
    finally:
        browser.close()
        browser.switch_to.window(browser.window_handles[0])


def test_the_over_training_slider_shows_each_epochs_picture(browser, snapped, small_npz, tmp_path,
                                                            run_cli):
    """Issue 32: the layer's frames (one per snapshot) are one figure whose slider steps
    through the epochs, offline (plain JavaScript in the page)."""
    from selenium.webdriver.common.by import By

    for args in (("epochs", "a2", "--layer", "conv2", "--data", small_npz), ("gallery", "a2")):
        done = run_cli(*args, "--trained-dir", snapped, "--outputs-dir", tmp_path)
        assert done.code == 0, done.output
    browser.get((tmp_path / "a2" / "index.html").as_uri())
    slider = browser.find_element(By.CSS_SELECTOR, "#layer-conv2 figure.series input[type=range]")
    figure = browser.find_element(By.CSS_SELECTOR, "#layer-conv2 figure.series")
    picture = figure.find_element(By.TAG_NAME, "img")
    assert picture.get_attribute("src").endswith("epochs/conv2/epoch-0001.png")  # the last first
    for epoch in (0, 1):
        browser.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input'));", slider, epoch)
        assert picture.get_attribute("src").endswith(f"epochs/conv2/epoch-{epoch:04d}.png")
        assert figure.find_element(By.TAG_NAME, "output").text.startswith(f"conv2 after epoch {epoch}")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                      picture) > 100  # the picture is there and drawn


def test_the_live_page_follows_a_run_while_it_trains(browser, small_npz, tmp_path):
    """Issue 32: cnnviz.train(serve=0) opens the live page after the first epoch; the page
    polls the run, draws its curves and computes the chosen image again with each epoch's
    weights — its last answer equals the finished model's."""
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import cnnviz

    import time

    lines, done, opened = [], {}, threading.Event()

    def pace(epoch, logs):  # epoch 2 starts once the page is open; epoch 2 stays ≥ 2.5 s
        if epoch == 1:
            opened.wait(timeout=120)
        elif epoch == 2:
            time.sleep(2.5)

    def train():
        done["m"] = cnnviz.train(name="w", data=small_npz, trained_dir=tmp_path, epochs=3,
                                 serve=0, live=False, report=lines.append, progress=pace)

    runner = threading.Thread(target=train)
    runner.start()
    try:
        WebDriverWait(browser, 120, poll_frequency=0.2).until(
            lambda d: any(line.startswith("live page of w: ") for line in lines))
        url = next(line for line in lines if line.startswith("live page of w: ")).split()[4]
        browser.get(url)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return window.cnnviz.ready === true"))
        browser.find_element(By.ID, "sample-index").clear()
        browser.find_element(By.ID, "sample-index").send_keys("3")
        browser.find_element(By.ID, "sample-load").click()
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return window.cnnviz.answers > 0 && !window.cnnviz.inFlight"))
        opened.set()
        runner.join(timeout=300)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "const s = window.cnnviz; return s.training && s.training.status === 'complete'"
            " && s.epochsSeen.includes(3) && !s.inFlight && !s.pending;"))
    finally:
        runner.join(timeout=300)
    seen = browser.execute_script("return window.cnnviz.epochsSeen")
    assert seen == [2, 3], seen  # it followed each epoch
    assert "complete: epoch 3 of 3" in browser.find_element(By.ID, "training-line").text
    pixels, layers, scores = page_arrays(browser)
    final = done["m"].activations(pixels[np.newaxis])  # the finished model, read here
    for name, values in layers.items():
        np.testing.assert_allclose(values, final[name][0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, final.outputs[0], rtol=1e-5, atol=1e-6)
    done["m"].live_page.stop()
