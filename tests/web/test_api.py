"""The HTTP API as a script uses it, each answer validated against the OpenAPI document the app
serves; and the document covers every route."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import jsonschema
import numpy as np
import pytest
from defusedxml.ElementTree import fromstring
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from PIL import Image

from maskweb.export.xmp import MASK_GROUP, NS_DT, NS_RDF
from maskweb.masking import editing
from maskweb.masking.api.openapi import openapi_document
from maskweb.masking.decoding import embeddings, render
from tests.web.conftest import make_session

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = {"kind": "point", "x": 240, "y": 180}
DOC = openapi_document()
DT, RDF = f"{{{NS_DT}}}", f"{{{NS_RDF}}}"


def schema_for(path: str, method: str, status: int) -> dict[str, Any]:
    response = DOC["paths"][path][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def check(response: Any, path: str, method: str = "get") -> Any:
    """The response's status is documented, and its JSON body fits the documented schema."""
    documented = DOC["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    if response["Content-Type"].startswith("application/json"):
        body = response.json()
        schema = {**schema_for(path, method, response.status_code),
                  "components": DOC["components"]}
        jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
        return body
    return response


def api_routes() -> set[str]:
    """Every /api/ route of the URLconf, in OpenAPI's path syntax."""
    found: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if route.startswith("api/"):
                    found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return found


def test_openapi_document_covers_every_route_and_is_served():
    assert api_routes() == set(DOC["paths"])
    served = Client().get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.json() == DOC
    # Every $ref resolves.
    text = str(DOC)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in DOC["components"]["schemas"]
    jsonschema.Draft202012Validator.check_schema({"$defs": DOC["components"]["schemas"]})


def test_script_flow_prompt_undo_apply_download():
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    path = "/api/v1/sessions/{token}"
    client = Client()
    state = check(client.get(base), path)
    assert state["status"] == "ready" and state["role"] == "edit"

    mask = check(client.post(f"{base}/prompts", INSIDE, content_type="application/json"),
                 path + "/prompts", "post")
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(mask["png_base64"]))).convert("L"))
    png = png >= 128
    assert png.shape == (360, 480) and png[180, 240] and not png[5, 5]
    assert mask["bbox"][0] <= 240 < mask["bbox"][2]

    undone = check(client.post(f"{base}/undo"), path + "/undo", "post")
    assert undone["empty"] and undone["png_base64"] == ""
    redone = check(client.post(f"{base}/redo"), path + "/redo", "post")
    assert not redone["empty"]
    check(client.post(f"{base}/candidate", {"index": 0}, content_type="application/json"),
          path + "/candidate", "post")
    check(client.get(f"{base}/current"), path + "/current")

    applied = check(client.post(f"{base}/apply", {"name": "Lemon"},
                                content_type="application/json"), path + "/apply", "post")
    assert applied["object"]["name"] == "Lemon"

    one = client.get(applied["object"]["png_url"])
    assert one.status_code == 200 and one["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(one.content))
    assert img.size == (480, 360) and img.mode == "L"
    assert 'filename="photo-Lemon.png"' in one["Content-Disposition"]
    soft = np.asarray(Image.open(io.BytesIO(client.get(applied["object"]["png_url"]
                                                       + "?soft=1").content)))
    assert len(np.unique(soft)) > 2, "the soft mask has in-between values on its edge"

    svg = client.get(applied["object"]["svg_url"])
    assert svg.status_code == 200 and b"<path" in svg.content and b"Lemon" in svg.content
    everything = client.get(f"{base}/mask.png")
    assert everything.status_code == 200
    xmp = client.get(f"{base}/sidecar.xmp")
    assert xmp.status_code == 200 and 'filename="photo.png.xmp"' in xmp["Content-Disposition"]
    assert b"darktable:masks_history" in xmp.content or b"masks_history" in xmp.content

    renamed = check(client.patch(f"{base}/objects/1", {"visible": False},
                                 content_type="application/json"),
                    path + "/objects/{number}", "patch")
    assert renamed["visible"] is False
    nothing = client.get(f"{base}/mask.png")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "empty"
    check(client.post(f"{base}/objects/1/reopen"), path + "/objects/{number}/reopen", "post")
    gone = client.delete(f"{base}/objects/1")
    assert gone.status_code == 204


def test_view_token_reads_but_cannot_write():
    session = make_session()
    base = f"/api/v1/sessions/{session.view_token}"
    client = Client()
    state = client.get(base).json()
    assert state["role"] == "view" and "edit_token" not in state and "edit_url" not in state
    for method, url, body in [("post", "/prompts", INSIDE), ("post", "/undo", None),
                              ("post", "/apply", None), ("put", "/model", {"model": "grabcut"}),
                              ("patch", "/objects/1", {"name": "x"}),
                              ("delete", "/objects/1", None)]:
        response = getattr(client, method)(base + url, body, content_type="application/json")
        assert response.status_code == 403, (method, url)
        assert response.json()["error"]["code"] == "forbidden"


def test_errors_are_json_with_a_code():
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    missing = client.get("/api/v1/sessions/unknown-token")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    not_json = client.post(f"{base}/prompts", "{not json", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "bad_json"
    outside = client.post(f"{base}/prompts", {"kind": "point", "x": 1e6, "y": 1},
                          content_type="application/json")
    assert outside.status_code == 400 and outside.json()["error"]["code"] == "out_of_bounds"
    nan = client.post(f"{base}/prompts", '{"kind": "point", "x": NaN, "y": 1}',
                      content_type="application/json")
    assert nan.status_code == 400
    wrong_method = client.delete(f"{base}/prompts")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert wrong_method["Allow"] == "POST"


def test_prompt_while_encoding_is_kept_and_answered_202():
    session = make_session(ready=False)
    base = f"/api/v1/sessions/{session.edit_token}"
    response = Client().post(f"{base}/prompts", INSIDE, content_type="application/json")
    body = check(response, "/api/v1/sessions/{token}/prompts", "post")
    assert response.status_code == 202 and body["status"] == "encoding"
    assert Client().get(base).json()["current"]["prompts"] == [
        {"kind": "point", "x": 240.0, "y": 180.0, "positive": True}]


def test_models_endpoint_lists_the_default():
    body = check(Client().get("/api/v1/models"), "/api/v1/models")
    assert body["default"] in [m["id"] for m in body["models"]]
    assert "grabcut" in [m["id"] for m in body["models"]]


def test_pickers_offer_only_models_that_answer_clicks(settings):
    # LiteMedSAM as shipped was trained on boxes: a click gives an empty mask, so neither the
    # upload page's picker (GET /models) nor the session page's (the session state) offers
    # it. It stays installed: a script may still name it, and as the default it is offered.
    settings.DEFAULT_MODEL = "grabcut"
    body = check(Client().get("/api/v1/models"), "/api/v1/models")
    offered = {m["id"]: m for m in body["models"]}
    assert "litemedsam" not in offered
    assert offered["litemedsam-photo"]["prompts"] == ["click", "box", "stroke"]
    session = make_session()
    state = Client().get(f"/api/v1/sessions/{session.edit_token}").json()
    assert "litemedsam" not in [m["id"] for m in state["models"]]
    assert editing.check_model("litemedsam") == "litemedsam"
    settings.DEFAULT_MODEL = "litemedsam"
    listed = Client().get("/api/v1/models").json()["models"]
    assert {"id": "litemedsam", "name": "LiteMedSAM (as shipped)", "default": True,
            "prompts": ["box"]} in listed


def test_session_page_is_404_for_an_unknown_token(settings, tmp_path):
    settings.FRONTEND_DIR = tmp_path
    (tmp_path / "session.html").write_text("<html>session</html>")
    (tmp_path / "index.html").write_text("<html>upload</html>")
    session = make_session()
    client = Client()
    assert client.get("/s/no-such-token/").status_code == 404
    page = client.get(f"/s/{session.view_token}/")
    assert page.status_code == 200 and b"session" in b"".join(page.streaming_content)
    assert page["Referrer-Policy"] == "no-referrer"
    assert b"upload" in b"".join(client.get("/").streaming_content)


def test_existing_sidecar_is_validated_on_upload():
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    bad = Client().post(f"{base}/sidecar", b"<not xmp/>", content_type="application/rdf+xml")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_sidecar"


def test_oversized_json_body_is_a_json_413():
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    huge = b"<x>" + b"a" * (3 * 1024 * 1024) + b"</x>"
    response = Client().post(f"{base}/sidecar", huge, content_type="application/rdf+xml")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_redis_down_is_a_json_503_not_a_crash(settings):
    from maskweb import runner

    session = make_session()
    editing.add_prompt(editing.Access(session, editing.EDIT), INSIDE)
    embeddings.local_cache.clear()
    render.predictions.clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{runner.free_port()}/0"  # nothing listens there
    settings.REDIS_RETRY_SECONDS = 0.3  # a Redis that stays down, not one being restarted
    response = Client().get(f"/api/v1/sessions/{session.edit_token}/current")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def session_with_one_object(photo: bytes | None = None) -> tuple[Any, str]:
    """A ready session with one applied object (a click inside), and its API base path."""
    session = make_session(photo)
    access = editing.Access(session, editing.EDIT)
    editing.add_prompt(access, INSIDE)
    editing.apply(access)
    return session, f"/api/v1/sessions/{session.edit_token}"


def test_vector_settings_are_advertised_and_change_the_svg():
    session, base = session_with_one_object()
    client = Client()
    state = check(client.get(base), "/api/v1/sessions/{token}")
    assert state["vectorize"] == {"turdsize": 4, "alphamax": 1.0, "opttolerance": 0.2,
                                  "feather": 0.0}
    corners = client.get(f"{base}/masks.svg?alphamax=0").content
    smooth = client.get(f"{base}/masks.svg?alphamax=1.3333").content
    assert corners != smooth and b"<path" in corners
    # Dropping every region smaller than the photo leaves an empty path.
    nothing = client.get(f"{base}/objects/1/mask.svg?turdsize=100000").content
    assert re.search(rb' d=""', nothing)
    feathered = client.get(f"{base}/sidecar.xmp?feather=12")
    assert feathered.status_code == 200
    assert feathered.content != client.get(f"{base}/sidecar.xmp").content
    for bad in ("turdsize=-1", "turdsize=2.5", "alphamax=2", "feather=abc", "alphamax=nan"):
        response = client.get(f"{base}/masks.svg?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_field"


def sidecar_contents(xmp: bytes) -> tuple[list[str], list[str]]:
    """(mask group names in force, exposure instance names) of a darktable sidecar.

    darktable uses the mask snapshot of the latest history item that has one."""
    desc = fromstring(xmp).find(f".//{RDF}Description")
    rows = desc.findall(f"{DT}masks_history/{RDF}Seq/{RDF}li")
    latest = max(int(r.get(f"{DT}mask_num")) for r in rows)
    groups = [r.get(f"{DT}mask_name") for r in rows if int(r.get(f"{DT}mask_num")) == latest
              and r.get(f"{DT}mask_type") == str(MASK_GROUP)]
    instances = [h.get(f"{DT}multi_name") for h in desc.findall(f"{DT}history/{RDF}Seq/{RDF}li")
                 if h.get(f"{DT}operation") == "exposure"]
    return groups, instances


def test_one_objects_sidecar_holds_that_object_only_and_merges_like_the_full_one():
    session = make_session()
    access = editing.Access(session, editing.EDIT)
    editing.add_prompt(access, INSIDE)
    editing.apply(access, "Lemon")
    editing.add_prompt(access, {"kind": "box", "x0": 20, "y0": 20, "x1": 120, "y1": 100})
    editing.apply(access, "Sky")
    base = f"/api/v1/sessions/{session.edit_token}"
    route = "/api/v1/sessions/{token}/objects/{number}/sidecar.xmp"
    client = Client()
    objects = check(client.get(f"{base}/objects"), "/api/v1/sessions/{token}/objects")
    url = {o["name"]: o["xmp_url"] for o in objects["objects"]}
    assert url["Lemon"] == f"{base}/objects/1/sidecar.xmp"

    lemon = check(client.get(url["Lemon"]), route)
    assert lemon.status_code == 200 and lemon["Content-Type"] == "application/rdf+xml"
    # Named as darktable looks for it, like the all-objects sidecar.
    assert 'filename="photo.png.xmp"' in lemon["Content-Disposition"]
    assert sidecar_contents(lemon.content) == (["grp Lemon"], ["Lemon"])
    sky = check(client.get(url["Sky"] + "?feather=3&turdsize=0"), route)
    assert sidecar_contents(sky.content) == (["grp Sky"], ["Sky"])
    view = client.get(f"/api/v1/sessions/{session.view_token}/objects/2/sidecar.xmp")
    assert view.status_code == 200 and sidecar_contents(view.content) == (["grp Sky"], ["Sky"])
    assert sidecar_contents(client.get(f"{base}/sidecar.xmp").content) \
        == (["grp Lemon", "grp Sky"], ["Lemon", "Sky"])

    # With the user's sidecar uploaded (here: the one holding Sky), one object's download is
    # merged into it: the earlier edit is kept and its masks stay in force beside Lemon's.
    assert client.post(f"{base}/sidecar", sky.content,
                       content_type="application/rdf+xml").status_code == 200
    merged = check(client.get(url["Lemon"]), route)
    groups, instances = sidecar_contents(merged.content)
    assert sorted(groups) == ["grp Lemon", "grp Sky"] and instances == ["Sky", "Lemon"]

    # Removed again: downloads start a new sidecar (Sky's edit is no longer in Lemon's); the
    # state says which sidecar is in force; the view link cannot remove it.
    assert check(client.get(base), "/api/v1/sessions/{token}")["sidecar"]["bytes"] \
        == len(sky.content)
    refused = client.delete(f"/api/v1/sessions/{session.view_token}/sidecar")
    assert refused.status_code == 403
    assert editing.reload(session).sidecar_file
    removed = client.delete(f"{base}/sidecar")
    assert removed.status_code == 204
    assert check(client.get(base), "/api/v1/sessions/{token}")["sidecar"] is None
    assert sidecar_contents(check(client.get(url["Lemon"]), route).content) \
        == (["grp Lemon"], ["Lemon"])
    assert client.delete(f"{base}/sidecar").status_code == 204  # none left: same answer

    for bad, code, status in (("objects/1/sidecar.xmp?feather=-1", "bad_field", 400),
                              ("objects/1/sidecar.xmp?opttolerance=x", "bad_field", 400),
                              ("objects/9/sidecar.xmp", "not_found", 404)):
        response = client.get(f"{base}/{bad}")
        assert response.status_code == status, bad
        assert check(response, route)["error"]["code"] == code
    # The current object, still empty after the apply, has nothing to download.
    current = editing.reload(session).current.number
    empty = client.get(f"{base}/objects/{current}/sidecar.xmp")
    assert empty.status_code == 409 and check(empty, route)["error"]["code"] == "empty"


def ellipse_photo(width: int = 480, height: int = 360) -> bytes:
    """A yellow ellipse on blue: an object whose outline is all curves (the rectangle of
    two_tone_photo has nothing for opttolerance to join)."""
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - 240) / 150) ** 2 + ((yy - 180) / 100) ** 2 <= 1
    pixels = np.where(inside[..., None], (240, 210, 40), (40, 90, 200))
    pixels = pixels + np.random.default_rng(0).integers(-8, 8, pixels.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def path_nodes(svg: bytes) -> int:
    """Segments (curves and lines) of every path: one per node on a closed path."""
    return sum(len(re.findall(rb"[CL]", d)) for d in re.findall(rb' d="([^"]*)"', svg))


def test_opttolerance_is_advertised_checked_and_joins_curves():
    session, base = session_with_one_object(ellipse_photo())
    client = Client()
    state = check(client.get(base), "/api/v1/sessions/{token}")
    assert state["vectorize"]["opttolerance"] == 0.2
    assert state["vectorize_bounds"]["opttolerance"] == {"min": 0.0, "max": 5.0,
                                                         "integer": False}
    documented = {p["name"]: p["schema"] for p in
                  DOC["paths"]["/api/v1/sessions/{token}/masks.svg"]["get"]["parameters"]}
    assert documented["opttolerance"]["default"] == state["vectorize"]["opttolerance"]
    assert documented["opttolerance"]["maximum"] == state["vectorize_bounds"]["opttolerance"][
        "max"]

    tight = client.get(f"{base}/objects/1/mask.svg?opttolerance=0")
    loose = client.get(f"{base}/objects/1/mask.svg?opttolerance=2")
    assert tight.status_code == loose.status_code == 200
    assert 0 < path_nodes(loose.content) < path_nodes(tight.content) / 2, \
        (path_nodes(loose.content), path_nodes(tight.content))
    assert path_nodes(client.get(f"{base}/objects/1/mask.svg").content) \
        == path_nodes(client.get(f"{base}/objects/1/mask.svg?opttolerance=0.2").content)
    # The XMP takes it too: fewer nodes, a smaller sidecar.
    assert len(client.get(f"{base}/sidecar.xmp?opttolerance=2").content) \
        < len(client.get(f"{base}/sidecar.xmp?opttolerance=0").content)

    for bad in ("-0.1", "5.5", "lots", "inf", "nan"):
        for route, documented_route in (("masks.svg", "masks.svg"),
                                        ("objects/1/mask.svg", "objects/{number}/mask.svg"),
                                        ("sidecar.xmp", "sidecar.xmp")):
            response = client.get(f"{base}/{route}?opttolerance={bad}")
            assert response.status_code == 400, (route, bad)
            error = check(response, f"/api/v1/sessions/{{token}}/{documented_route}")["error"]
            assert error["code"] == "bad_field" and "'opttolerance'" in error["message"], error


def test_a_slow_request_does_not_hold_up_the_others(monkeypatch):
    """Each API view runs in its own thread: a long download must not queue page loads."""
    import asyncio
    import threading

    from django.test import AsyncClient

    from maskweb.masking.editing import downloads

    session = make_session()
    editing.add_prompt(editing.Access(session, editing.EDIT), INSIDE)
    release = threading.Event()
    real_svg = downloads.svg

    def slow_svg(*args: Any, **kwargs: Any) -> str:
        assert release.wait(20), "the other request never got through"
        return real_svg(*args, **kwargs)

    monkeypatch.setattr(downloads, "svg", slow_svg)
    order: list[str] = []

    async def scenario() -> None:
        client = AsyncClient()

        async def slow() -> None:
            response = await client.get(f"/api/v1/sessions/{session.edit_token}/masks.svg")
            assert response.status_code == 200
            order.append("svg")

        async def quick() -> None:
            await asyncio.sleep(0.3)
            response = await client.get(f"/api/v1/sessions/{session.view_token}")
            assert response.status_code == 200
            order.append("state")
            release.set()  # only now may the slow one finish

        await asyncio.gather(slow(), quick())

    asyncio.run(scenario())
    assert order == ["state", "svg"]
