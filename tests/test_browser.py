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
    assert card_link.text == "7"
    card_link.click()
    assert browser.current_url.endswith("cards/conv2/map-007.html")
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h3")]
    assert {"Kernel", "Best input pattern", "Evolution of the pattern", "Top dataset examples",
            "Statistics"} <= set(headings)
    assert broken_images(browser) == []
    screenshot(browser, "atlas-map-card.png", tmp_path)

    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    assert browser.current_url.endswith("map-008.html")
    browser.find_element(By.PARTIAL_LINK_TEXT, "↑ conv2").click()
    assert browser.current_url.endswith("index.html#layer-conv2")
