"""The whole path a photographer walks, in the real page on the real stack.

Debian's Chromium (Playwright) drives the pages served by Daphne, with a real Celery worker
encoding and a real Redis (the ``live_stack`` fixture). The masks are checked where the user
sees them: the pixels of the page's overlay canvas, and the downloaded PNG.
Screenshots go to test-artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskweb.segment import orientation as orient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DAVIS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "DAVIS"
PHOTO = DAVIS / "img" / "000.jpg"
GT = DAVIS / "gt" / "000.png"
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 60_000  # a mask, a download, a reconnect
ENCODE_WAIT_MS = 180_000  # the first encode also waits for the worker to start, on 2 busy cores


@pytest.fixture(scope="module")
def gt_mask() -> np.ndarray:
    if not PHOTO.exists() or not GT.exists():
        pytest.skip("DAVIS data not found beside the repository (../shared/datasets)")
    return np.asarray(Image.open(GT)) > 0


def deepest_point(region: np.ndarray) -> tuple[float, float]:
    """The pixel centre deepest inside a region (as RITM's click simulation picks clicks)."""
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x) + 0.5, float(y) + 0.5


# ---------------------------------------------------------------- in-page helpers

def to_page(page, x: float, y: float) -> tuple[float, float]:
    """Full-resolution photo pixel → page (CSS) coordinates, through the viewer's transform."""
    return tuple(page.evaluate("""([x, y]) => {
        const v = window.maskweb.viewer;
        const r = v.stage.getBoundingClientRect();
        const p = v.toPreview(x, y);
        return [r.left + p.x * v.view.scale + v.view.tx, r.top + p.y * v.view.scale + v.view.ty];
    }""", [x, y]))


def overlay_pixels(page) -> int:
    """How many device pixels of the overlay canvas (current mask + markers) are painted."""
    return page.evaluate("""() => {
        const v = window.maskweb.viewer;
        v.drawNow();
        const c = v.overlayCanvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n += 1;
        return n;
    }""")


def tinted_share(page, points: list[tuple[float, float]]) -> float:
    """Share of the given full-res points where the overlay canvas shows the mask's tint."""
    return page.evaluate("""(pts) => {
        const v = window.maskweb.viewer;
        v.drawNow();
        const c = v.overlayCanvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let hit = 0;
        for (const [x, y] of pts) {
          const p = v.toPreview(x, y);
          const sx = Math.floor((p.x * v.view.scale + v.view.tx) * v.dpr);
          const sy = Math.floor((p.y * v.view.scale + v.view.ty) * v.dpr);
          if (sx < 0 || sy < 0 || sx >= c.width || sy >= c.height) continue;
          const i = 4 * (sy * c.width + sx);
          // The current object's tint is blue: more blue than red where the mask is.
          if (d[i + 3] > 0 && d[i + 2] > d[i]) hit += 1;
        }
        return hit / pts.length;
    }""", [list(p) for p in points])


def wait_or_explain(page, predicate: str, stack=None, timeout: int = WAIT_MS) -> None:
    """wait_for_function, but a timeout says what the page knew (and the stack's logs)."""
    try:
        page.wait_for_function(predicate, timeout=timeout)
    except Exception as exc:
        try:
            state = page.evaluate("""() => { const app = window.maskweb && window.maskweb.app;
                return JSON.stringify({
                data: {...document.body.dataset},
                objects: app && app.objects,
                drawn: app ? [...app.objectMasks.entries()].map(
                    ([id, r]) => [id, r.key, r.mask && r.mask.area]) : null,
                toasts: document.getElementById('toasts').innerText}); }""")
        except Exception as unreadable:  # the logs below matter more than the page's state
            state = f"(not readable: {unreadable})"
        console = "\n".join(getattr(page, "console_lines", [])[-40:])
        logs = stack.logs() if stack is not None else ""
        raise AssertionError(f"{exc}\npage: {state}\nconsole:\n{console}\n{logs}") from None


def mask_seq(page) -> int:
    return int(page.evaluate("document.body.dataset.maskSeq || '-1'"))


def wait_new_mask(page, after_seq: int) -> None:
    page.wait_for_function(
        "(s) => Number(document.body.dataset.maskSeq || -1) > s"
        " && document.body.dataset.busy !== '1'",
        arg=after_seq, timeout=WAIT_MS)


def sample(region: np.ndarray, n: int = 300, seed: int = 0) -> list[tuple[float, float]]:
    ys, xs = np.nonzero(region)
    idx = np.random.default_rng(seed).choice(len(xs), size=min(n, len(xs)), replace=False)
    return [(float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in idx]


def upload_through_page(page, stack, photo: Path = PHOTO) -> str:
    """Upload with the page's file picker; returns the edit token from the session URL."""
    page.goto(stack.url + "/")
    page.set_input_files("#file-input", str(photo))
    page.wait_for_url("**/s/*/", timeout=WAIT_MS)
    wait_or_explain(page, "document.body.dataset.status === 'ready'"
                    " && document.body.dataset.connection === 'online'",
                    stack, timeout=ENCODE_WAIT_MS)
    page.wait_for_function("window.maskweb && window.maskweb.viewer.image !== null")
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def current_mask(base: str, token: str) -> np.ndarray:
    with urllib.request.urlopen(f"{base}/api/v1/sessions/{token}/current", timeout=60) as r:
        body = json.loads(r.read())
    png = Image.open(io.BytesIO(base64.b64decode(body["png_base64"])))
    return np.asarray(png.convert("L")) > 127


def post_photo(base: str, path: Path) -> tuple[int, dict]:
    """The same upload by script, to compare the page's message with the API's."""
    boundary = "maskwebtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/v1/sessions", data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]


def new_page(browser, frames: list | None = None):
    # bypass_csp: Playwright's wait_for_function compiles its string predicates in the page,
    # which the app's Content-Security-Policy (no eval) refuses. The page's own code runs under
    # the policy in test_the_pages_work_under_their_content_security_policy.
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Kept for wait_or_explain's message: what the page said before a wait timed out.
    page.console_lines = []
    page.on("console", lambda m: page.console_lines.append(f"{m.type}: {m.text}"))
    if frames is not None:
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames.append(f)))
    page.js_errors = errors
    return context, page


# ---------------------------------------------------------------- the tests

def test_click_refine_undo_apply_and_download_png(live_stack, browser, artifacts, gt_mask,
                                                  tmp_path):
    context, page = new_page(browser)
    try:
        token = upload_through_page(page, live_stack)
        assert page.inner_text("#status-text") == "Ready"
        assert overlay_pixels(page) == 0  # nothing drawn before the first click

        # Click on the object: a mask comes back and is drawn over the object.
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        one_click = overlay_pixels(page)
        assert one_click > 1000
        inside = tinted_share(page, sample(gt_mask))
        assert inside > 0.7, f"only {inside:.0%} of the object is tinted"
        assert page.text_content("#prompt-count") == "1 prompt"
        page.screenshot(path=str(artifacts / "session-edit-mask.png"))

        # Shift+click where the mask spills over the background: the mask changes.
        mask = current_mask(live_stack.url, token)
        spill = mask & ~gt_mask
        bx, by = deepest_point(spill) if spill.sum() > 50 else deepest_point(~gt_mask)
        seq = mask_seq(page)
        page.keyboard.down("Shift")
        page.mouse.click(*to_page(page, bx, by))
        page.keyboard.up("Shift")
        wait_new_mask(page, seq)
        refined = overlay_pixels(page)
        assert refined != one_click
        assert page.text_content("#prompt-count") == "2 prompts"
        prompts = page.evaluate("window.maskweb.app.current.prompts")
        assert prompts[-1]["positive"] is False
        assert prompts[-1]["x"] == pytest.approx(bx, abs=1.5)
        assert prompts[-1]["y"] == pytest.approx(by, abs=1.5)

        # Undo: exactly the one-click picture again (mask and markers).
        seq = mask_seq(page)
        page.keyboard.press("Control+z")
        wait_new_mask(page, seq)
        assert overlay_pixels(page) == one_click
        assert not page.is_disabled("#redo-btn")

        # Apply (Enter): the object is listed and the current object starts empty.
        seq = mask_seq(page)
        page.keyboard.press("Enter")
        page.wait_for_selector("#objects-list .object", timeout=WAIT_MS)
        wait_new_mask(page, seq)
        assert page.inner_text("#objects-list .object .name") == "Object 1"
        assert overlay_pixels(page) == 0
        page.wait_for_timeout(500)  # the applied object's own mask is fetched and drawn
        page.screenshot(path=str(artifacts / "session-edit-applied.png"))

        # Download all objects as PNG: full size, the object's pixels set.
        with page.expect_download(timeout=WAIT_MS) as info:
            page.click("#dl-png")
        png = Image.open(info.value.path())
        assert png.format == "PNG"
        assert png.size == Image.open(PHOTO).size
        got = np.asarray(png.convert("L")) > 127
        assert got[int(fy), int(fx)]
        recall = (got & gt_mask).sum() / gt_mask.sum()
        assert recall > 0.8, f"the downloaded mask covers {recall:.0%} of the object"
        assert got.sum() < got.size * 0.6  # not simply everything

        # SVG and darktable XMP, with the panel's vector settings in the request.
        page.click("#vector-settings summary")
        page.locator("#turdsize").fill("50")
        page.locator("#opttolerance").fill("1")
        assert page.text_content("#opttolerance-out") == "1.00 px"
        with page.expect_request(lambda r: "masks.svg" in r.url) as request, \
                page.expect_download(timeout=WAIT_MS) as info:
            page.click("#dl-svg")
        assert "turdsize=50" in request.value.url and "opttolerance=1" in request.value.url
        svg = ET.parse(info.value.path()).getroot()
        assert svg.tag.endswith("svg")
        assert (svg.get("width"), svg.get("height")) == ("854", "480")
        paths = [e for e in svg.iter() if e.tag.endswith("path") and e.get("d")]
        assert len(paths) == 1  # one object, one path (holes are subpaths)
        with page.expect_download(timeout=WAIT_MS) as info:
            page.click("#dl-xmp")
        assert info.value.suggested_filename == "000.jpg.xmp"
        xmp = Path(info.value.path()).read_text()
        assert "darktable:masks_history" in xmp and "Object 1" in xmp

        # "Merge into my darktable sidecar": a non-XMP is refused with the server's message,
        # a darktable sidecar is taken (here the one just downloaded).
        junk = tmp_path / "notes.xmp"
        junk.write_text("not a sidecar")
        page.set_input_files("#sidecar-input", str(junk))
        page.wait_for_selector(".toast.error", timeout=WAIT_MS)
        assert "sidecar" in page.inner_text("#toasts").lower()
        sidecar = tmp_path / "000.jpg.xmp"
        sidecar.write_text(xmp)
        page.set_input_files("#sidecar-input", str(sidecar))
        page.wait_for_function(
            "() => document.getElementById('sidecar-label').textContent.includes('000.jpg.xmp')",
            timeout=WAIT_MS)

        # The page knows the sidecar after a reload (the server's state), and removes it.
        page.reload()
        wait_or_explain(page, "document.body.dataset.connection === 'online'", live_stack)
        page.wait_for_function(
            "() => document.getElementById('sidecar-label').textContent.includes('000.jpg.xmp')",
            timeout=WAIT_MS)
        page.screenshot(path=str(artifacts / "sidecar-merging.png"))
        page.click("#sidecar-remove")
        page.wait_for_function(
            "() => document.getElementById('sidecar-label').textContent.startsWith('Merge into')"
            " && document.getElementById('sidecar-remove').hidden", timeout=WAIT_MS)
        with urllib.request.urlopen(f"{live_stack.url}/api/v1/sessions/{token}",
                                    timeout=30) as r:
            assert json.loads(r.read())["sidecar"] is None
        assert page.js_errors == []
    finally:
        context.close()


def test_view_link_follows_live_and_cannot_prompt(live_stack, browser, artifacts, gt_mask):
    editor_ctx, editor = new_page(browser)
    viewer_frames: list = []
    viewer_ctx, viewer = new_page(browser, viewer_frames)
    try:
        upload_through_page(editor, live_stack)
        view_url = editor.input_value("#view-link")
        assert "/s/" in view_url and view_url != editor.url
        assert editor.input_value("#edit-link").rstrip("/") == editor.url.rstrip("/")

        viewer.goto(view_url)
        viewer.wait_for_selector("body[data-role=view][data-connection=online]", timeout=WAIT_MS)
        assert viewer.is_visible("#role-badge")
        assert "read-only" in viewer.inner_text("#role-badge")
        assert viewer.is_hidden("#edit-link-row")  # a view link never shows the edit link
        assert viewer.is_hidden("#apply-btn")

        # The editor clicks; the viewer's page draws the same mask without sending anything.
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(viewer)
        editor.mouse.click(*to_page(editor, fx, fy))
        wait_new_mask(editor, -1)
        viewer.wait_for_function("(s) => Number(document.body.dataset.maskSeq || -1) > s",
                                 arg=seq, timeout=WAIT_MS)
        assert tinted_share(viewer, sample(gt_mask)) > 0.7
        assert viewer.evaluate("document.body.dataset.maskArea") == \
            editor.evaluate("document.body.dataset.maskArea")

        # The viewer clicks and shift-clicks: nothing is sent, the page says it is read-only.
        before = overlay_pixels(viewer)
        viewer.mouse.click(*to_page(viewer, 30.5, 30.5))
        viewer.keyboard.press("Enter")
        viewer.keyboard.press("Control+z")
        viewer.wait_for_selector(".toast", timeout=5000)
        assert "View only" in viewer.inner_text("#toasts")
        viewer.wait_for_timeout(500)
        sent = [json.loads(f) for f in viewer_frames if isinstance(f, str)]
        assert [m["type"] for m in sent if m["type"] != "ping"] == []
        assert overlay_pixels(viewer) == before

        # Applying in the editor shows up in the viewer's objects list, live.
        editor.keyboard.press("Enter")
        viewer.wait_for_selector("#objects-list .object", timeout=WAIT_MS)
        assert viewer.is_hidden("#objects-list .object .reopen")  # no write actions
        viewer.wait_for_timeout(500)
        viewer.screenshot(path=str(artifacts / "session-view.png"))
        assert viewer.js_errors == [] and editor.js_errors == []
    finally:
        viewer_ctx.close()
        editor_ctx.close()


def test_upload_of_a_non_image_shows_the_servers_message(live_stack, browser, artifacts,
                                                         tmp_path):
    context, page = new_page(browser)
    try:
        fake = tmp_path / "holiday.jpg"
        fake.write_bytes(b"this is not a photo at all\n" * 40)
        page.goto(live_stack.url + "/")
        page.set_input_files("#file-input", str(fake))
        page.wait_for_selector("#upload-error:not([hidden])", timeout=WAIT_MS)
        text = page.inner_text("#upload-error")
        # The page shows the server's own explanation (the API's JSON error), not a status code.
        status, error = post_photo(live_stack.url, fake)
        assert status in (400, 415)
        assert text == f"Upload failed: {error['message']}"
        assert page.get_attribute("#upload-error", "data-code") == error["code"]
        assert page.url.rstrip("/") == live_stack.url.rstrip("/")  # stayed on the upload page
        page.screenshot(path=str(artifacts / "upload-error.png"))
    finally:
        context.close()


def test_page_reconnects_after_daphne_restart_and_resyncs(live_stack, browser, gt_mask):
    context, page = new_page(browser)
    try:
        upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, -1)
        drawn = overlay_pixels(page)
        area = page.evaluate("document.body.dataset.maskArea")

        opened = int(page.evaluate("document.body.dataset.connects"))
        live_stack.restart_daphne()
        page.wait_for_function(
            "(n) => Number(document.body.dataset.connects) > n"
            " && document.body.dataset.connection === 'online'",
            arg=opened, timeout=WAIT_MS)
        # After hello the server sends the current mask again: the same picture as before.
        page.wait_for_function("(a) => document.body.dataset.maskArea === a", arg=area,
                               timeout=WAIT_MS)
        assert overlay_pixels(page) == drawn

        # And the page keeps working on the new connection.
        seq = mask_seq(page)
        page.keyboard.press("Delete")
        wait_new_mask(page, seq)
        assert overlay_pixels(page) == 0
        assert page.js_errors == []
    finally:
        context.close()


def test_page_that_missed_the_ready_message_finds_out_and_works(live_stack, browser):
    """A Redis that loses its data while a photo waits in the queue loses the job and the
    socket's group: the "ready" message reaches nobody. The page asks when it hears nothing
    for a while, so it still turns ready, and a click gets its mask."""
    photo = DAVIS / "img" / "001.jpg"
    context, page = new_page(browser)
    try:
        live_stack.kill_worker()  # the job stays queued, not started
        page.goto(live_stack.url + "/")
        page.set_input_files("#file-input", str(photo))
        page.wait_for_url("**/s/*/", timeout=WAIT_MS)
        page.wait_for_selector("body[data-status=encoding][data-connection=online]",
                               timeout=WAIT_MS)
        live_stack.flush_redis()  # the queued job and the socket's group: gone
        live_stack.start_worker()
        wait_or_explain(page, "document.body.dataset.status === 'ready'", live_stack,
                        timeout=ENCODE_WAIT_MS)
        assert page.evaluate("document.body.dataset.connects") == "1", "no reconnect needed"

        width, height = Image.open(photo).size
        page.mouse.click(*to_page(page, width / 2, height / 2))
        wait_new_mask(page, -1)
        assert overlay_pixels(page) > 0
        assert page.js_errors == []
    finally:
        context.close()


def test_rotated_photo_is_shown_upright_and_masks_stay_in_place(live_stack, browser, tmp_path,
                                                                gt_mask):
    """A camera JPEG stored sideways (EXIF orientation 6): the page shows it upright, clicks are
    upright, the applied object is drawn back in place and the PNG download is upright."""
    upright = np.asarray(Image.open(PHOTO).convert("RGB"))
    stored = orient.to_stored(upright, 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "sideways.jpg"
    Image.fromarray(stored).save(rotated, quality=95, exif=exif)

    context, page = new_page(browser)
    try:
        upload_through_page(page, live_stack, rotated)
        photo = page.evaluate("window.maskweb.app.photo")
        assert (photo["width"], photo["height"]) == (upright.shape[1], upright.shape[0])
        assert photo["orientation"] == 6

        fx, fy = deepest_point(gt_mask)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, -1)
        assert tinted_share(page, sample(gt_mask)) > 0.7
        before = tint_bits(page, "window.maskweb.viewer.current")

        page.keyboard.press("Enter")
        wait_or_explain(page, """() => {
            const {app} = window.maskweb;
            const o = app.objects.length && app.objectMasks.get(app.objects[0].id);
            return o && o.mask && o.mask.area > 0;
        }""", live_stack)
        after = tint_bits(page, "(({app}) => app.objectMasks.get(app.objects[0].id).mask)"
                                "(window.maskweb)")
        iou = (before & after).sum() / (before | after).sum()
        assert iou > 0.95, f"the applied object is drawn elsewhere (IoU {iou:.2f})"

        with page.expect_download(timeout=WAIT_MS) as info:
            page.click("#dl-png")
        png = np.asarray(Image.open(info.value.path()).convert("L")) > 127
        assert png.shape == upright.shape[:2]  # the PNG is upright, as viewers show the photo
        assert (png & gt_mask).sum() / gt_mask.sum() > 0.8
        assert page.js_errors == []
    finally:
        context.close()


def tint_bits(page, expression: str) -> np.ndarray:
    """The painted pixels of a renderable mask's tint canvas (preview size) as a bool array."""
    out = page.evaluate(f"""() => {{
        const m = {expression};
        const d = m.tint.getContext('2d').getImageData(0, 0, m.width, m.height).data;
        const bits = new Array(m.width * m.height);
        for (let i = 0; i < bits.length; i += 1) bits[i] = d[4 * i + 3] > 0 ? 1 : 0;
        return {{w: m.width, h: m.height, bits}};
    }}""")
    return np.array(out["bits"], bool).reshape(out["h"], out["w"])


def test_objects_panel_renames_hides_reopens_and_deletes(live_stack, browser, artifacts,
                                                         gt_mask):
    context, page = new_page(browser)
    page.on("dialog", lambda d: d.accept())  # the delete confirmation
    try:
        token = upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        # Two objects (the bear twice: a click that surely gives a mask, whatever the model).
        for n in (1, 2):
            seq = mask_seq(page)
            page.mouse.click(*to_page(page, fx, fy))
            wait_new_mask(page, seq)
            page.mouse.click(*to_page(page, fx, fy), button="right")  # right-click applies
            wait_or_explain(page, f"() => Number(document.body.dataset.objects) === {n}",
                            live_stack)

        def server_objects() -> list[dict]:
            url = f"{live_stack.url}/api/v1/sessions/{token}/objects"
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.loads(r.read())["objects"]

        rows = page.locator("#objects-list .object")
        rows.nth(0).locator(".name").dblclick()
        page.keyboard.press("Control+a")
        page.keyboard.type("Bear")
        page.keyboard.press("Enter")
        page.wait_for_function("() => window.maskweb.app.objects[0].name === 'Bear'",
                               timeout=WAIT_MS)
        assert server_objects()[0]["name"] == "Bear"

        # Its PNG downloads are named after it, the soft one distinct.
        for item, expected in (("dl-object-png", "000-Bear.png"),
                               ("dl-object-soft-png", "000-Bear-soft.png"),
                               ("dl-object-raster-png", "000-Bear-sensor-16bit.png"),
                               ("dl-object-svg", "000-Bear.svg")):
            rows.nth(0).locator(".more").click()
            if item == "dl-object-png":
                page.screenshot(path=str(artifacts / "object-menu.png"))
            with page.expect_download(timeout=WAIT_MS) as info:
                page.click(f".menu .{item}")
            assert info.value.suggested_filename == expected

        # One object's darktable sidecar, from its menu: that object's mask group only.
        rows.nth(0).locator(".more").click()
        with page.expect_request(lambda r: "/objects/1/sidecar.xmp" in r.url) as request, \
                page.expect_download(timeout=WAIT_MS) as info:
            page.click(".menu .dl-object-xmp")
        assert "opttolerance=" in request.value.url and "feather=" in request.value.url
        assert info.value.suggested_filename == "000.jpg.xmp"
        xmp = Path(info.value.path()).read_text()
        assert 'mask_name="grp Bear"' in xmp and "grp Object 2" not in xmp

        rows.nth(1).locator(".toggle-visible").click()
        page.wait_for_selector("#objects-list .object.hidden-object", timeout=WAIT_MS)
        assert [o["visible"] for o in server_objects()] == [True, False]

        # Reopen the bear: it becomes the current object again, with its mask and prompts.
        seq = mask_seq(page)
        page.locator("#objects-list .object", has_text="Bear").locator(".reopen").click()
        wait_new_mask(page, seq)
        assert page.text_content("#prompt-count") == "1 prompt"
        assert tinted_share(page, sample(gt_mask)) > 0.7
        assert [o["name"] for o in server_objects()] == ["Object 2"]

        page.locator("#objects-list .object .more").first.click()
        page.click(".menu .delete-object")
        page.wait_for_function("() => window.maskweb.app.objects.length === 0", timeout=WAIT_MS)
        assert server_objects() == []
        assert page.js_errors == []
    finally:
        context.close()


def test_undo_takes_back_apply_and_delete_also_after_a_reload(live_stack, browser, artifacts,
                                                              gt_mask):
    """Ctrl+Z covers the session's object changes, not only prompts: a deleted object comes
    back with its mask, an apply is taken back, and the history is the server's (a reloaded
    page goes on undoing); Ctrl+Shift+Z makes it again."""
    context, page = new_page(browser)
    page.on("dialog", lambda d: d.accept())  # the delete confirmation
    try:
        upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        page.mouse.click(*to_page(page, fx, fy), button="right")  # right-click applies
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 1", live_stack)
        page.locator("#objects-list .object .more").first.click()
        page.click(".menu .delete-object")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 0", live_stack)

        # Undo the delete: the object is listed again and its mask drawn in its colour.
        page.keyboard.press("Control+z")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 1", live_stack)
        wait_or_explain(page, "() => { const r = window.maskweb.app.objectMasks.get(1);"
                        " return r && r.mask && r.mask.area > 1000; }", live_stack)
        page.screenshot(path=str(artifacts / "undo-delete.png"))

        # Reload: the history is the server's. Undo the apply: the bear is the current object
        # again, its prompt and mask shown, the list empty.
        page.reload()
        wait_or_explain(page, "document.body.dataset.connection === 'online'"
                        " && document.body.dataset.status === 'ready'", live_stack)
        assert not page.is_disabled("#undo-btn")
        seq = mask_seq(page)
        page.keyboard.press("Control+z")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 0", live_stack)
        wait_new_mask(page, seq)
        assert page.text_content("#prompt-count") == "1 prompt"
        assert tinted_share(page, sample(gt_mask)) > 0.7
        page.screenshot(path=str(artifacts / "undo-apply.png"))

        # Redo: applied again.
        page.keyboard.press("Control+Shift+z")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 1", live_stack)
        assert page.js_errors == []
    finally:
        context.close()


def photo_canvas_rgb(page, points: list[tuple[float, float]]) -> np.ndarray:
    """The photo canvas's colours (photo + applied objects) at full-res points, (n, 3)."""
    out = page.evaluate("""(pts) => {
        const v = window.maskweb.viewer;
        v.drawNow();
        const c = v.photoCanvas;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return pts.map(([x, y]) => {
          const p = v.toPreview(x, y);
          const sx = Math.floor((p.x * v.view.scale + v.view.tx) * v.dpr);
          const sy = Math.floor((p.y * v.view.scale + v.view.ty) * v.dpr);
          const i = 4 * (sy * c.width + sx);
          return [d[i], d[i + 1], d[i + 2]];
        });
    }""", [list(p) for p in points])
    return np.array(out, float)


def test_applied_objects_show_in_their_colour_at_the_chosen_opacity(live_stack, browser,
                                                                      artifacts, gt_mask):
    """An applied object is tinted clearly in its own colour, which its editor picks from the
    swatch (shared through the server); the opacity slider sets how strongly; the current
    object stays blue with a dashed outline; the object menu fits in the window."""
    context, page = new_page(browser)
    try:
        token = upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        page.mouse.click(*to_page(page, fx, fy), button="right")
        wait_or_explain(page, "() => { const r = window.maskweb.app.objectMasks.get(1);"
                        " return r && r.mask && r.mask.area > 1000; }", live_stack)
        inside = sample(gt_mask, 200)
        page.evaluate("() => { window.maskweb.viewer.showMasks = false; }")
        bare = photo_canvas_rgb(page, inside)
        page.evaluate("() => { window.maskweb.viewer.showMasks = true; }")
        default = photo_canvas_rgb(page, inside)
        # Clearly visible: the tint moves the object's pixels by a good amount on average.
        assert np.abs(default - bare).mean() > 25

        # Red, picked from the swatch: the server keeps it, the object turns red.
        page.locator("#objects-list .object .colour-input").first.fill("#ff0000")
        wait_or_explain(page, "() => window.maskweb.app.objects[0].colour === '#ff0000'",
                        live_stack)
        with urllib.request.urlopen(f"{live_stack.url}/api/v1/sessions/{token}/objects",
                                    timeout=30) as r:
            assert json.loads(r.read())["objects"][0]["colour"] == "#ff0000"
        red = photo_canvas_rgb(page, inside)
        shift = (red - bare).mean(axis=0)
        assert shift[0] > 20 and shift[0] > shift[1] + 20 and shift[0] > shift[2] + 20, shift

        # The opacity slider: stronger tint at 100 % than at 10 %.
        page.locator("#mask-opacity").fill("0.1")
        faint = np.abs(photo_canvas_rgb(page, inside) - bare).mean()
        page.locator("#mask-opacity").fill("1")
        strong = np.abs(photo_canvas_rgb(page, inside) - bare).mean()
        assert strong > 3 * faint, (faint, strong)
        assert page.text_content("#mask-opacity-out") == "100 %"
        page.locator("#mask-opacity").fill("0.45")

        # The current object over it: blue (more blue than red) where it is.
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        assert tinted_share(page, sample(gt_mask)) > 0.7
        page.screenshot(path=str(artifacts / "overlay-colours.png"))

        # The object's menu: icons at button size, the whole menu inside the window.
        page.locator("#objects-list .object .more").first.click()
        menu = page.locator(".menu").bounding_box()
        assert menu is not None
        assert menu["x"] >= 0 and menu["y"] >= 0
        assert menu["x"] + menu["width"] <= VIEWPORT["width"]
        assert menu["y"] + menu["height"] <= VIEWPORT["height"]
        sizes = page.evaluate("() => [...document.querySelectorAll('.menu svg')].map("
                              "s => s.getBoundingClientRect().width)")
        assert sizes and max(sizes) <= 20, sizes
        page.screenshot(path=str(artifacts / "object-menu.png"))
        assert page.js_errors == []
    finally:
        context.close()


def test_combine_subtract_and_invert_objects_from_the_list(live_stack, browser, artifacts,
                                                           gt_mask):
    """Tick two objects and Subtract: a new object, exactly the first's PNG less the
    second's; Ctrl+Z takes it back; tick one and Invert: its inverse."""
    context, page = new_page(browser)
    try:
        token = upload_through_page(page, live_stack)
        api = f"{live_stack.url}/api/v1/sessions/{token}"
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        page.keyboard.press("Enter")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 1", live_stack)
        # A box over the bear's left half: a second object that overlaps the first.
        ys, xs = np.nonzero(gt_mask)
        x0, x1 = float(xs.min()) - 5, float(xs.min() + xs.max()) / 2
        y0, y1 = float(ys.min()) - 5, float(ys.max()) + 5
        seq = mask_seq(page)
        page.mouse.move(*to_page(page, x0, y0))
        page.mouse.down()
        page.mouse.move(*to_page(page, x1, y1), steps=8)
        page.mouse.up()
        wait_new_mask(page, seq)
        page.keyboard.press("Enter")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 2", live_stack)

        def png(url: str) -> np.ndarray:
            with urllib.request.urlopen(url, timeout=60) as r:
                return np.asarray(Image.open(io.BytesIO(r.read())).convert("L")) >= 128

        first, second = png(f"{api}/objects/1/mask.png"), png(f"{api}/objects/2/mask.png")
        assert (first & second).any() and (first & ~second).any()

        rows = page.locator("#objects-list .object")
        assert page.is_hidden("#combine-bar")
        rows.nth(0).locator(".select-object").check()
        assert page.is_disabled("#combine-difference") and not page.is_disabled("#combine-invert")
        rows.nth(1).locator(".select-object").check()
        assert not page.is_disabled("#combine-difference") and page.is_disabled("#combine-invert")
        page.screenshot(path=str(artifacts / "combine-selected.png"))
        page.click("#combine-difference")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 3", live_stack)
        made = page.evaluate("window.maskweb.app.objects[2]")
        assert made["name"] == "Object 1 − Object 2" and made["combination"] == "difference"
        assert np.array_equal(png(f"{api}/objects/{made['id']}/mask.png"), first & ~second)
        wait_or_explain(page, f"() => {{ const r = window.maskweb.app.objectMasks.get("
                              f"{made['id']}); return r && r.mask && r.mask.area > 100; }}",
                        live_stack)
        page.screenshot(path=str(artifacts / "combine-difference.png"))

        page.keyboard.press("Control+z")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 2", live_stack)

        rows.nth(1).locator(".select-object").check()
        page.click("#combine-invert")
        wait_or_explain(page, "() => Number(document.body.dataset.objects) === 3", live_stack)
        made = page.evaluate("window.maskweb.app.objects[2]")
        assert made["name"] == "Inverse of Object 2"
        assert np.array_equal(png(f"{api}/objects/{made['id']}/mask.png"), ~second)
        assert page.js_errors == []
    finally:
        context.close()


def test_zoomed_to_100_percent_the_page_shows_the_full_resolution_pixels(live_stack, browser,
                                                                          artifacts, tmp_path):
    """A 3000 x 2000 photo whose middle is a one-pixel checkerboard: the working picture (2048
    px) can only show it grey; at 100 % (key 1) the page asks for the visible region of the
    original and draws each photo pixel on a screen pixel."""
    big = np.full((2000, 3000, 3), 90, np.uint8)
    yy, xx = np.mgrid[600:1400, 1000:2000]
    big[600:1400, 1000:2000] = np.where(((xx + yy) % 2 == 0)[..., None], 230, 20)
    path = tmp_path / "checker.png"
    Image.fromarray(big).save(path)
    context, page = new_page(browser)
    try:
        token = upload_through_page(page, live_stack, path)
        assert page.evaluate("window.maskweb.app.photo.preview_width") == 2048

        def alternation() -> float:
            """Mean difference between neighbouring screen pixels across the middle."""
            return page.evaluate("""() => {
                const v = window.maskweb.viewer;
                v.drawNow();
                const c = v.photoCanvas;
                const y = Math.floor(c.height / 2);
                const d = c.getContext('2d').getImageData(Math.floor(c.width / 2) - 50, y,
                                                          100, 1).data;
                let sum = 0;
                for (let i = 4; i < d.length; i += 4) sum += Math.abs(d[i] - d[i - 4]);
                return sum / 99;
            }""")

        # A mask over the checkerboard: at 100 % its edge is drawn as the download has it.
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, 1500.5, 1000.5))
        wait_new_mask(page, seq)
        page.mouse.move(5, 5)  # off the photo: no hover preview in the way
        page.keyboard.press("1")
        assert page.text_content("#zoom-text") == "100%"
        wait_or_explain(page, "() => window.maskweb.viewer.fullCrop !== null", live_stack)
        crop = page.evaluate("(() => { const c = window.maskweb.viewer.fullCrop;"
                             " return [c.x, c.y, c.w, c.h]; })()")
        assert crop[2] <= 2048 and crop[3] <= 2048
        wait_or_explain(page, "() => { const e = window.maskweb.viewer.fullEdges.get("
                              "'current'); return e && e.mask; }", live_stack)
        edge = tint_bits(page, "window.maskweb.viewer.fullEdges.get('current').mask")
        number = page.evaluate("window.maskweb.app.currentObjectId")
        with urllib.request.urlopen(f"{live_stack.url}/api/v1/sessions/{token}/objects/"
                                    f"{number}/mask.png", timeout=60) as r:
            download = np.asarray(Image.open(io.BytesIO(r.read())).convert("L")) >= 128
        x, y, w, h = crop
        assert edge.shape == (h, w)
        assert np.array_equal(edge, download[y:y + h, x:x + w])
        assert 0 < edge.mean() < 1, "the crop holds a piece of the mask's edge"
        sharp = alternation()
        page.screenshot(path=str(artifacts / "true-100-percent.png"))
        page.evaluate("() => { window.maskweb.viewer.fullCrop = null; }")
        enlarged = alternation()
        assert sharp > 100 and enlarged < 0.5 * sharp, (sharp, enlarged)
        # A pan asks again (nothing covers the view now); back to fit, the crop goes (the
        # working picture shows all there is to see then).
        page.evaluate("() => window.maskweb.viewer.panBy(150, 0)")  # the mask's left edge
        wait_or_explain(page, "() => window.maskweb.viewer.fullCrop !== null", live_stack)
        wait_or_explain(page, "() => { const v = window.maskweb.viewer, e = v.fullEdges.get("
                              "'current'); return e && e.mask && e.crop === v.fullCrop; }",
                        live_stack)
        page.screenshot(path=str(artifacts / "true-100-percent-edge.png"))
        page.keyboard.press("f")
        wait_or_explain(page, "() => window.maskweb.viewer.fullCrop === null", live_stack)
        assert page.js_errors == []
    finally:
        context.close()


def test_resting_the_pointer_previews_the_mask_a_click_would_give(live_stack, browser,
                                                                   artifacts, gt_mask):
    """Hover preview: the pointer rests on the bear, its outline shows (nothing is stored);
    a move drops it at once; P turns previews off and none is asked for then."""
    frames: list = []
    context, page = new_page(browser, frames)
    try:
        token = upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        page.mouse.move(*to_page(page, fx, fy))
        wait_or_explain(page, "document.body.dataset.hover === 'shown'", live_stack)
        hovered = tint_bits(page, "window.maskweb.viewer.hover")
        # The same mask a click there gives.
        seq = mask_seq(page)
        page.screenshot(path=str(artifacts / "hover-preview.png"))
        with urllib.request.urlopen(f"{live_stack.url}/api/v1/sessions/{token}",
                                    timeout=30) as r:
            assert json.loads(r.read())["current"]["prompts"] == [], "a preview stores nothing"
        recall = (hovered & gt_mask).sum() / gt_mask.sum()
        assert recall > 0.7, recall
        page.mouse.move(*to_page(page, fx + 40, fy))  # a move: the preview goes at once
        assert page.evaluate("window.maskweb.viewer.hover") is None
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        clicked = tint_bits(page, "window.maskweb.viewer.current")
        assert (hovered == clicked).mean() > 0.99

        page.keyboard.press("p")
        assert page.get_attribute("#hover-btn", "aria-pressed") == "false"
        asked = sum(1 for f in frames if isinstance(f, str) and '"preview"' in f)
        page.mouse.move(*to_page(page, fx - 30, fy))
        page.wait_for_timeout(600)  # three rest delays: a preview would have been asked for
        assert sum(1 for f in frames if isinstance(f, str) and '"preview"' in f) == asked
        assert page.evaluate("window.maskweb.viewer.hover") is None
        assert page.js_errors == []
    finally:
        context.close()


def test_the_xmp_feather_is_previewed_on_the_masks_while_it_is_set(live_stack, browser,
                                                                     artifacts, gt_mask):
    """With the vector settings open and a feather of 30 px, the current mask's edge fades
    outwards over 30 px in the page (as darktable draws the sidecar's border: linear); closed,
    the mask is hard again."""
    context, page = new_page(browser)
    try:
        token = upload_through_page(page, live_stack)
        fx, fy = deepest_point(gt_mask)
        seq = mask_seq(page)
        page.mouse.click(*to_page(page, fx, fy))
        wait_new_mask(page, seq)
        mask = current_mask(live_stack.url, token)  # work size = the photo's (854 x 480)
        outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)

        def alphas(low: float, high: float) -> float:
            ys, xs = np.nonzero((outside > low) & (outside < high))
            pick = np.random.default_rng(1).choice(len(xs), size=min(200, len(xs)),
                                                   replace=False)
            pts = [[float(xs[i]) + 0.5, float(ys[i]) + 0.5] for i in pick]
            return float(np.mean(page.evaluate("""(pts) => {
                const v = window.maskweb.viewer;
                v.drawNow();
                const c = v.overlayCanvas;
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return pts.map(([x, y]) => {
                  const p = v.toPreview(x, y);
                  const sx = Math.floor((p.x * v.view.scale + v.view.tx) * v.dpr);
                  const sy = Math.floor((p.y * v.view.scale + v.view.ty) * v.dpr);
                  return d[4 * (sy * c.width + sx) + 3];
                });
            }""", pts)))

        assert alphas(9, 11) == 0  # hard: nothing 10 px out
        page.click("#vector-settings summary")
        page.locator("#feather").fill("30")
        wait_or_explain(page, "document.body.dataset.featherPreview === 'on'", live_stack)
        near, half, far = alphas(4, 6), alphas(14, 16), alphas(34, 40)
        opacity = page.evaluate("window.maskweb.viewer.opacity")
        # Linear: about (1 - d/30) of the tint's alpha (the 1.15-px chamfer error aside).
        assert near > half > far == 0, (near, half, far)
        assert abs(half - 255 * opacity * 0.5) < 255 * opacity * 0.15, (half, opacity)
        page.screenshot(path=str(artifacts / "feather-preview.png"))
        page.click("#vector-settings summary")  # closed: the PNG and SVG have no feather
        wait_or_explain(page, "document.body.dataset.featherPreview === ''", live_stack)
        assert alphas(9, 11) == 0
        assert page.js_errors == []
    finally:
        context.close()


def test_the_pages_work_under_their_content_security_policy(live_stack, browser, gt_mask):
    """The policy allows the app's own origin only (maskweb.headers). The upload page (its
    thumbnail is drawn on a canvas, not from a blob: URL), the session page, its socket, a
    click's mask and a download all work under it, and the browser reports no violation."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # CSP enforced
    # Runs in every page before its own scripts; the browser fires this event for each
    # thing the policy blocks (a script, a style attribute, an image, a connection).
    context.add_init_script("""window.__violations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
            `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));""")
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        response = page.goto(live_stack.url + "/")
        assert response is not None
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page.set_input_files("#file-input", str(PHOTO))
        page.wait_for_url("**/s/*/", timeout=WAIT_MS)
        page.wait_for_selector("body[data-status=ready][data-connection=online]"
                               "[data-photo=loaded]", timeout=ENCODE_WAIT_MS)
        fx, fy = deepest_point(gt_mask)
        page.mouse.click(*to_page(page, fx, fy))
        page.wait_for_selector("body[data-busy='0'][data-mask-seq]", timeout=WAIT_MS)
        with page.expect_download(timeout=WAIT_MS) as info:
            page.click("#dl-png")
        assert Image.open(info.value.path()).size == Image.open(PHOTO).size
        assert page.evaluate("Number(document.body.dataset.maskArea)") > 1000
        violations = page.evaluate("window.__violations")
        assert violations == [], violations
        assert not [line for line in console if "Content Security Policy" in line], console
        assert errors == []
    finally:
        context.close()


def test_a_page_the_server_tells_it_is_behind_says_so_until_its_mask_comes(live_stack, browser):
    """The server sends `behind` when a page's oldest prompt has waited for its mask
    (docs/protocol.md): the busy label says the prompts are saved and the mask is coming, and
    goes back to normal once the mask that covers them arrives."""
    context, page = new_page(browser)
    try:
        upload_through_page(page, live_stack, DAVIS / "img" / "002.jpg")
        # A prompt waiting for its mask, then the server's message about it (as the socket
        # would deliver it: through the page's message handler).
        page.evaluate("""() => {
            const app = window.maskweb.app;
            app.pending.set('waiting', setTimeout(() => {}, 60000));
            app.socket.handlers.onJson({v: 1, type: 'behind', pending: 3, waited_ms: 1500,
                                        id: 'waiting'});
        }""")
        assert page.is_visible("#mask-busy")
        assert "3 prompts saved" in page.inner_text("#mask-busy-text")
        assert page.evaluate("document.body.dataset.behind") == "1"
        # The mask that answers it (an empty one, as after a clear) ends the state.
        page.evaluate("""() => window.maskweb.app.socket.handlers.onMask({
            header: {type: 'mask', v: 1, seq: 1e9, id: 'waiting', prompts: [], empty: true},
            png: new Uint8Array(0)})""")
        page.wait_for_selector("#mask-busy", state="hidden", timeout=WAIT_MS)
        assert page.evaluate("document.body.dataset.behind") == "0"
        assert page.inner_text("#mask-busy-text") == "Computing mask…"
        assert page.js_errors == []
    finally:
        context.close()
