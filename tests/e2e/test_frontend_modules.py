"""The page's pure JavaScript logic, run in the real Chromium (no server stack needed).

Each test imports a module from frontend/js/ into a blank page served by a static file server
and checks what the page would send or draw: coordinates, frame parsing, outlines, mask
decoding, error messages.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


def js(page, body: str, arg=None):
    """Run an async JS function body with `arg`; modules are loaded with `await imp('x.js')`."""
    return page.evaluate(
        "async (arg) => { const imp = (m) => import('/js/' + m); " + body + " }", arg
    )


def test_mask_frame_round_trips_header_and_png_bytes(module_page):
    out = js(module_page, """
        const p = await imp('protocol.js');
        const png = new Uint8Array([137, 80, 78, 71, 1, 2, 3]);
        const frame = p.buildMaskFrame({type: 'mask', seq: 7, width: 3, height: 2, note: 'é'}, png);
        const {header, png: back} = p.parseMaskFrame(frame.buffer);
        return {header, png: Array.from(back), prefix: new DataView(frame.buffer).getUint32(0)};
    """)
    assert out["header"] == {"type": "mask", "seq": 7, "width": 3, "height": 2, "note": "é"}
    assert out["png"] == [137, 80, 78, 71, 1, 2, 3]
    assert out["prefix"] == len('{"type":"mask","seq":7,"width":3,"height":2,"note":"é"}'.encode())


def test_empty_mask_frame_has_zero_png_bytes_and_bad_frames_throw(module_page):
    out = js(module_page, """
        const p = await imp('protocol.js');
        const empty = p.parseMaskFrame(p.buildMaskFrame({type: 'mask', empty: true}).buffer);
        const errors = [];
        for (const bad of [new Uint8Array([0, 0]), new Uint8Array([0, 0, 0, 99, 123])]) {
          try { p.parseMaskFrame(bad.buffer); errors.push(null); }
          catch (e) { errors.push(String(e.message)); }
        }
        return {len: empty.png.length, errors};
    """)
    assert out["len"] == 0
    assert all(out["errors"]), out["errors"]


def test_preview_clicks_become_full_resolution_coordinates(module_page):
    photo = {"width": 4000, "height": 3000, "preview_width": 2048, "preview_height": 1536}
    out = js(module_page, """
        const g = await imp('geometry.js');
        return {
          full: g.previewToFull(arg, 1024, 768),
          corner: g.previewToFull(arg, 2048, 1536),
          back: g.fullToPreview(arg, 4000, 3000),
          box: g.boxPrompt(arg, {x: 3900, y: 2999.5}, {x: -20, y: 100}),
          inside: [g.insidePhoto(arg, 0, 0), g.insidePhoto(arg, 4000, 10),
                   g.insidePhoto(arg, 10, -1)],
        };
    """, photo)
    assert out["full"] == {"x": 2000, "y": 1500}
    assert out["corner"] == {"x": 4000, "y": 3000}
    assert out["back"] == {"x": 2048, "y": 1536}
    box = out["box"]
    assert box["kind"] == "box"
    assert (box["x0"], box["y0"], box["x1"]) == (0, 100, 3900)
    assert 2999 < box["y1"] < 3000  # clamped inside the photo, ordered
    assert out["inside"] == [True, False, False]


def test_zoom_keeps_the_point_under_the_pointer_fixed(module_page):
    out = js(module_page, """
        const g = await imp('geometry.js');
        const v0 = g.fitView(800, 600, 2048, 1536, 0);
        const before = g.screenToPreview(v0, 300, 200);
        const v1 = g.zoomAt(v0, 3, 300, 200);
        const after = g.screenToPreview(v1, 300, 200);
        const capped = g.zoomAt(v0, 1000, 10, 10, 0, 2);
        return {v0, before, after, ratio: v1.scale / v0.scale, capped: capped.scale};
    """)
    assert out["v0"]["scale"] == pytest.approx(600 / 1536)
    assert out["after"]["x"] == pytest.approx(out["before"]["x"])
    assert out["after"]["y"] == pytest.approx(out["before"]["y"])
    assert out["ratio"] == pytest.approx(3)
    assert out["capped"] == 2


def test_brush_stroke_is_thinned_capped_and_keeps_its_ends(module_page):
    photo = {"width": 1000, "height": 800}
    out = js(module_page, """
        const g = await imp('geometry.js');
        const pts = [];
        for (let i = 0; i <= 5000; i += 1) pts.push([i * 0.19, 400 + Math.sin(i / 50) * 50]);
        pts.push([1200, 900]);  // dragged past the corner: clamped onto the photo
        const s = g.strokePrompt(arg, pts, 9, false);
        return {n: s.points.length, first: s.points[0], last: s.points.at(-1),
                radius: s.radius, positive: s.positive, kind: s.kind};
    """, photo)
    assert out["kind"] == "stroke" and out["positive"] is False and out["radius"] == 9
    assert 2 < out["n"] <= 400
    assert out["first"] == [0, 400]
    assert 999 < out["last"][0] < 1000 and 799 < out["last"][1] < 800


def _mask_rgba(mask: np.ndarray) -> list[int]:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = 255
    rgba[..., 3] = 255
    return rgba.ravel().tolist()


def test_outline_of_a_ring_traces_outer_edge_and_hole(module_page):
    mask = np.zeros((6, 7), bool)
    mask[1:5, 1:6] = True
    mask[2:4, 3] = False  # a 1x2 hole
    out = js(module_page, """
        const r = await imp('maskrender.js');
        const m = r.maskFromRgba(new Uint8Array(arg.rgba), arg.w, arg.h);
        return {area: m.area, bbox: m.bbox, segs: r.outlineSegments(m)};
    """, {"rgba": _mask_rgba(mask), "w": 7, "h": 6})
    assert out["area"] == int(mask.sum())
    assert out["bbox"] == [1, 1, 6, 5]
    total = sum(abs(x1 - x0) + abs(y1 - y0) for x0, y0, x1, y1 in out["segs"])
    assert total == 2 * (5 + 4) + 2 * (1 + 2)  # outer perimeter + hole perimeter
    segs = {tuple(s) for s in out["segs"]}
    assert (1, 1, 6, 1) in segs  # the whole top edge as one merged run
    assert (3, 2, 3, 4) in segs and (4, 2, 4, 4) in segs  # the hole's sides


def test_full_resolution_mask_is_scaled_to_the_preview_while_decoding(module_page):
    full = np.zeros((300, 400), bool)
    full[60:240, 100:200] = True  # a 100 x 180 block, at quarter size 25 x 45
    buf = io.BytesIO()
    Image.fromarray(full.astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    out = js(module_page, """
        const r = await imp('maskrender.js');
        const bytes = Uint8Array.from(atob(arg), (ch) => ch.charCodeAt(0));
        const m = await r.decodeMaskPng(new Blob([bytes], {type: 'image/png'}),
                                        {width: 100, height: 75});
        return {w: m.width, h: m.height, bbox: m.bbox, area: m.area};
    """, base64.b64encode(buf.getvalue()).decode())
    assert (out["w"], out["h"]) == (100, 75)
    assert out["bbox"] == [25, 15, 50, 60]
    assert abs(out["area"] - 25 * 45) <= 25 + 45  # only the edges may round either way


def test_server_errors_become_readable_messages(module_page):
    out = js(module_page, """
        const a = await imp('api.js');
        const j = a.errorFromBody(413, JSON.stringify({error: {code: 'too_large',
          message: 'The photo has 80 MP; the limit is 60 MP.'}}));
        const h = a.errorFromBody(502, '<html>Bad gateway</html>');
        return [[j.status, j.code, j.message], [h.status, h.code, h.message]];
    """)
    assert out[0] == [413, "too_large", "The photo has 80 MP; the limit is 60 MP."]
    assert out[1][0] == 502 and out[1][1] == "http_502"
    assert "not reachable" in out[1][2]


def test_session_token_is_read_from_the_page_path(module_page):
    out = js(module_page, """
        const a = await imp('api.js');
        return [a.tokenFromPath('/s/AbC-d_9/'), a.tokenFromPath('/s/AbC-d_9'),
                a.tokenFromPath('/'), a.tokenFromPath('/s/')];
    """)
    assert out == ["AbC-d_9", "AbC-d_9", None, None]


def test_models_answer_is_normalised_with_its_default(module_page):
    out = js(module_page, """
        const a = await imp('api.js');
        return a.normalizeModels({models: [{id: 'grabcut', name: 'Classical (GrabCut)'},
                                           {id: 'litemedsam', name: 'LiteMedSAM', default: true}],
                                  default: 'litemedsam'});
    """)
    assert out["defaultId"] == "litemedsam"
    assert [m["id"] for m in out["models"]] == ["grabcut", "litemedsam"]
    assert out["models"][0]["label"] == "Classical (GrabCut)"


def test_download_file_name_comes_from_content_disposition(module_page):
    out = js(module_page, """
        const u = await imp('ui.js');
        return [u.filenameFromDisposition('attachment; filename="IMG_1.JPG.xmp"'),
                u.filenameFromDisposition("attachment; filename*=UTF-8''caf%C3%A9.svg"),
                u.filenameFromDisposition(null)];
    """)
    assert out == ["IMG_1.JPG.xmp", "café.svg", None]


def test_the_analysis_subtitle_does_not_repeat_its_title(module_page):
    out = js(module_page, """
        const u = await imp('ui.js');
        return [u.sameWords('Analysing the photo.', 'Analysing the photo…'),
                u.sameWords("The photo's analysis was lost (cache cleared); analysing it again.",
                            'Re-encoding the photo…')];
    """)
    assert out == [True, False]


def test_feather_distance_and_ramp(module_page):
    out = js(module_page, """
        const m = await imp('maskrender.js');
        const bits = new Uint8Array(49); bits[3 * 7 + 3] = 1;  // one pixel in the middle
        const d = m.outsideDistance({width: 7, height: 7, bits, bbox: [3, 3, 4, 4]}, 10);
        return [d[3 * 7 + 3], d[3 * 7 + 4], d[2 * 7 + 2], d[3 * 7 + 5], d[0],
                m.featherAlpha(0, 20), m.featherAlpha(5, 20), m.featherAlpha(20, 20),
                m.featherAlpha(3, 0)];
    """)
    assert out[:4] == [0, 1, pytest.approx(2 ** 0.5), 2]
    assert out[4] == pytest.approx(3 * 2 ** 0.5)
    assert out[5:] == [1, 0.75, 0, 0]


def test_reconnect_delay_grows_and_is_capped(module_page):
    out = js(module_page, """
        const p = await imp('protocol.js');
        return [0, 1, 2, 3, 10, 50].map((n) => p.reconnectDelay(n, () => 0.5));
    """)
    assert out[:4] == [300, 600, 1200, 2400]
    assert out[4] == out[5] == 5000


def test_vector_settings_go_into_downloads_only_when_the_server_takes_them(module_page):
    out = js(module_page, """
        const a = await imp('api.js');
        const v = {turdsize: 10, alphamax: 0.5, opttolerance: 0.75, feather: 3};
        const adv = {turdsize: 4, alphamax: 1, opttolerance: 0.2, feather: 0};
        return [a.vectorQuery(v, null, 'svg'), a.vectorQuery(v, adv, 'svg'),
                a.vectorQuery(v, adv, 'xmp'), a.vectorQuery(v, {alphamax: 1}, 'xmp')];
    """)
    # A server that does not advertise opttolerance (the last one) never gets it.
    assert out == ["", "?turdsize=10&alphamax=0.5&opttolerance=0.75",
                   "?turdsize=10&alphamax=0.5&opttolerance=0.75&feather=3", "?alphamax=0.5"]


def test_socket_queues_through_a_short_drop_and_drops_stale_messages(module_page):
    out = js(module_page, """
        const p = await imp('protocol.js');
        class FakeWS {
          constructor(url) { this.url = url; this.readyState = 0; this.sent = [];
                             FakeWS.all.push(this); }
          send(text) { this.sent.push(JSON.parse(text)); }
          close() {}
        }
        FakeWS.all = [];
        let t = 0;
        const dropped = [];
        const s = new p.MaskSocket('ws://x/ws/sessions/T/', {onDropped: (id) => dropped.push(id)},
                                   {WebSocketImpl: FakeWS, now: () => t, queueMs: 3000});
        s.connect();
        const first = FakeWS.all[0];
        const early = s.send({type: 'prompt'});          // still connecting: queued
        first.readyState = 1; first.onopen();            // ... and sent on open
        first.readyState = 3; first.onclose({code: 1006});
        clearTimeout(s.retryTimer);
        t = 1000; const stale = s.send({type: 'apply'}); // queued, but too old by reopen
        t = 4500; const fresh = s.send({type: 'undo'});
        s.connect();
        const second = FakeWS.all[1];
        t = 5000; second.readyState = 1; second.onopen();
        const pingWhileOpen = s.send({type: 'ping'});
        second.readyState = 3; second.onclose({code: 4404}); // unknown token: give up
        clearTimeout(s.retryTimer);
        const afterFatal = s.send({type: 'prompt'});
        return {first: first.sent.map((m) => [m.type, m.id, m.v]),
                second: second.sent.map((m) => m.type), early, stale, fresh, dropped,
                pingWhileOpen: Boolean(pingWhileOpen), afterFatal,
                reconnecting: s.reconnecting, sockets: FakeWS.all.length};
    """)
    assert out["first"] == [["prompt", out["early"], 1]]
    assert out["second"] == ["undo", "ping"]
    assert out["dropped"] == [out["stale"]]
    assert out["afterFatal"] is None and out["reconnecting"] is False
    assert out["sockets"] == 2
