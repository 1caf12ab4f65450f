"""The web UI in a real browser: Playwright drives Debian's Chromium (headless) against
`slimswap ui`, uploads real faces, swaps, and checks the result image has a face that moved
towards the source and carries the provenance label. Leaves a screenshot and the measured
swap time in tests/ui/artifacts/.

Needs `scripts/install_browser.sh` (apt chromium + pip playwright); skips without them.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from slimswap import media
from slimswap.face.analyser import embedding_distance
from slimswap.paths import EXAMPLES_DIR
from slimswap.provenance import verify_file

SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
TARGET = EXAMPLES_DIR / "astronaut.png"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(server, launch_chromium):
    browser = launch_chromium()
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(30_000)
    page.goto(server)
    page.wait_for_selector("#swap-btn")
    yield page
    browser.close()


def _swap_and_wait(page, run: int) -> tuple[float, str]:
    """Click Swap; seconds until the page shows run `run`'s result image, and its URL."""
    start = time.perf_counter()
    page.click("#swap-btn")
    page.wait_for_function(
        """run => { const img = document.querySelector('#result-image img');
                     const status = document.querySelector('#status').innerText;
                     return status.includes('Run ' + run + ' ') && img && img.complete && img.naturalWidth > 0; }""",
        arg=run,
    )
    return time.perf_counter() - start, page.locator("#result-image img").get_attribute("src")


def test_swap_in_the_browser_shows_a_labelled_result_with_a_face(page, analyser, artifacts):
    page.locator("#sources input[type=file]").set_input_files(str(SOURCE))
    page.locator("#target input[type=file]").set_input_files(str(TARGET))
    page.wait_for_selector("#target-faces img")  # the target's faces are shown as thumbnails
    assert page.locator("#target-faces img").count() == 1

    first_s, _ = _swap_and_wait(page, 1)
    warm_s, src = _swap_and_wait(page, 2)  # the second click is the warm number we record
    status = page.locator("#status").inner_text()
    used = re.search(r"swapped 1 face\(s\) with (\S+) in [0-9.]+ s", status)
    assert used, status
    from slimswap.ui.app import default_mode

    assert default_mode() != "lite" or used.group(1).startswith("lite"), (
        status
    )  # lite is the default once shipped
    pipeline_s = float(re.search(r"in ([0-9.]+) s", status).group(1))

    link = page.locator("#downloads a[download]")
    assert (
        link.count() == 1
        and link.get_attribute("download") == "grace_hopper_swapped_into_astronaut.png"
    )
    with page.expect_download() as download:
        link.click()
    result = artifacts / "ui_result.png"
    download.value.save_as(result)
    assert (
        result.read_bytes() == page.request.get(src).body()
    )  # the shown image is the downloaded file
    page.screenshot(path=str(artifacts / "ui_swap.png"), full_page=True)
    (artifacts / "ui_timing.json").write_text(
        json.dumps(
            {
                "what": f"image swap of examples/astronaut.png (512x512) in the page, model {used.group(1)}, warm app",
                "click_to_result_s_first": round(first_s, 3),
                "click_to_result_s_warm": round(warm_s, 3),
                "pipeline_s_warm": pipeline_s,
            },
            indent=1,
        )
    )
    print(
        f"\nUI swap: first {first_s:.2f} s, warm {warm_s:.2f} s click-to-image (pipeline {pipeline_s:.2f} s)"
    )

    image = media.read_image(result)
    assert image.shape == media.read_image(TARGET).shape
    faces = analyser.detect(image)
    assert len(faces) == 1
    embed = lambda img: analyser.embed(img, analyser.detect(img)[0]).embedding
    source = embed(media.read_image(SOURCE))
    assert embedding_distance(embed(image), source) < embedding_distance(
        embed(media.read_image(TARGET)), source
    )
    report = verify_file(result)  # the page served the pipeline's file as written
    assert report.label_present and report.watermark_present


def test_no_face_is_a_readable_message_not_a_traceback(page, tmp_path, artifacts):
    scenery = tmp_path / "scenery.png"
    media.write_image(scenery, media.read_image(TARGET)[:200, -200:])  # the shuttle model: no face
    for box in ("#sources", "#target"):  # start from empty inputs, whatever ran before
        clear = page.locator(f"{box} button[aria-label='Clear']")
        if clear.count():
            clear.click()
    page.locator("#sources input[type=file]").set_input_files(str(SOURCE))
    page.locator("#target input[type=file]").set_input_files(str(scenery))
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('No face found')"
    )
    page.click("#swap-btn")
    toast = page.locator(".toast-body").filter(has_text="no face found in target image")
    toast.first.wait_for()
    page.wait_for_timeout(600)  # let the message box finish sliding in before the screenshot
    page.screenshot(
        path=str(artifacts / "ui_error.png")
    )  # viewport: the message box is pinned to it
    text = toast.first.inner_text()
    assert "scenery.png" in text and "Traceback" not in text and "/tmp/" not in text
