"""The `file`, `files` and `image` field types in every layer, on SQLite and PostgreSQL: pack
validation, plan / apply / retype, uploads and downloads through the API and the form, the
access rules of downloads, files deleted after a committed write (kept after a rolled-back
one), the rule language (SQL and Python agree), CSV export and the OpenAPI document."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.rules import RuleContext, check, compile_python
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.files.backends import STORAGE_VARIABLE
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage import revisions, system
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, sign_in, signed_in
from .packs import install, plan, write_files_pack, write_pack
from .rules.strategies import NOW

DOSSIER_FIELDS: dict[str, Any] = {
    "title": {"type": "text", "required": True},
    "attachment": {"type": "file", "label": "Attachment", "max_size": 4000},
    "photo": {"type": "image", "label": "Photo"},
    "papers": {"type": "files", "label": "Papers", "max_items": 3,
               "accept": ["application/pdf", "text/plain", "image/*"]},
}


def dossier(**fields: Any) -> dict[str, Any]:
    return {"label": "Dossier", "label_plural": "Dossiers", "title_field": "title",
            "fields": {**DOSSIER_FIELDS, **fields}}


def dossiers_pack(root: Path, version: str = "1.0.0", **fields: Any) -> Path:
    return write_pack(root, "archive", version, {"dossier": dossier(**fields)})


def png(width: int = 300, height: int = 200, colour: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


# --- pack validation ------------------------------------------------------------------------
BAD_SETTINGS = """\
kind: entity
name: dossier
fields:
  title:
    type: text
  attachment:
    type: file
    max_size: 0
  papers:
    type: files
    accept: [pdf]
  cover:
    type: image
    max_items: 2
"""

BAD_DEFINITIONS = """\
kind: entity
name: dossier
fields:
  title:
    type: text
  photo:
    type: image
    accept: [text/plain]
  scan:
    type: file
    default: 3
"""


def test_bad_settings_are_refused_at_their_file_and_line(tmp_path: Path) -> None:
    pack = write_files_pack(tmp_path, {"entities/dossier.yaml": BAD_SETTINGS}, name="archive", requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    where = "entities/dossier.yaml"
    assert f"{where}:8:15: fields.attachment.max_size: 0 is less than the minimum of 1" in result.output
    assert f"{where}:11:14: fields.papers.accept[0]:" in result.output and "'pdf'" in result.output
    assert f"{where}:14:5: fields.cover.max_items: unknown key 'max_items'" in result.output
    # What a schema cannot say: an image field's types are images; a file has no default.
    other = write_files_pack(tmp_path / "2", {"entities/dossier.yaml": BAD_DEFINITIONS}, name="archive",
                             requires={})
    result = CliRunner().invoke(main, ["pack", "validate", str(other)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert f"{where}:6:3: fields.photo: accept[0]: 'text/plain' is not a raster image type" in result.output
    assert f"{where}:9:3: fields.scan: default: a file field has no default" in result.output


def test_good_settings_validate(tmp_path: Path) -> None:
    pack = dossiers_pack(tmp_path)
    result = CliRunner().invoke(main, ["pack", "validate", str(pack)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


# --- plan, apply, retype -------------------------------------------------------------------
def insert(engine: sa.Engine, registry: FieldTypeRegistry, values: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables["dossier"]
        for v in values:  # one by one: the rows set different columns
            conn.execute(table.insert(), {"created_at": NOW, "updated_at": NOW, **v})


def rows(engine: sa.Engine, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        query = sa.text(f"SELECT {', '.join(columns)} FROM x_dossier ORDER BY id")
        return [tuple(r) for r in conn.execute(query)]


def test_install_makes_the_columns_and_retypes_are_checked(engine: sa.Engine, registry: FieldTypeRegistry,
                                                           tmp_path: Path) -> None:
    installation = plan(engine, registry, dossiers_pack(tmp_path, note={"type": "text"}))
    assert not installation.plan.blocked
    installer.install(engine, installation, author="test")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("x_dossier")}
    assert {"attachment", "attachment__id", "attachment__type", "papers", "papers__id", "papers__type",
            "photo", "photo__id", "photo__type"} <= columns
    assert sa.inspect(engine).has_table("slate_file")
    insert(engine, registry, [
        {"title": "A", "note": "offer.pdf", "attachment": "a.pdf", "attachment__id": 1,
         "attachment__type": "application/pdf"},
        {"title": "B", "attachment": "b.txt", "attachment__id": 2, "attachment__type": "text/plain",
         "papers": ["x.pdf", "y.pdf"], "papers__id": [3, 4], "papers__type": ["application/pdf"] * 2},
        {"title": "C"}])

    # Text is no file: a retype of a field holding text is refused with the rows at risk.
    refused = plan(engine, registry, dossiers_pack(tmp_path, "2.0.0", note={"type": "file"}))
    assert refused.plan.blocked
    [risk] = next(c for c in refused.plan.changes if c.field == "note").risks
    assert risk.blocking and risk.message.startswith("retype note text → file: 1 of 1 rows do not convert")
    # A file is no text either.
    back = plan(engine, registry, dossiers_pack(tmp_path, "2.0.0", note={"type": "text"},
                                                attachment={"type": "text"}))
    assert back.plan.blocked
    assert "retype attachment file → text" in next(c for c in back.plan.changes if c.field == "attachment"
                                                   ).risks[0].message
    # A file that is not an image cannot become one.
    image = plan(engine, registry, dossiers_pack(tmp_path, "2.0.0", note={"type": "text"},
                                                 attachment={"type": "image"}))
    assert image.plan.blocked
    assert "a.pdf is not an image (application/pdf)" in next(
        c for c in image.plan.changes if c.field == "attachment").risks[0].message
    # Several files do not fit in one.
    single = plan(engine, registry, dossiers_pack(tmp_path, "2.0.0", note={"type": "text"},
                                                  papers={"type": "file"}))
    assert single.plan.blocked
    assert "holds 2 files; a file field holds one" in next(
        c for c in single.plan.changes if c.field == "papers").risks[0].message

    # One file → a list of files: every value kept, in the new columns.
    install(engine, registry, dossiers_pack(tmp_path, "3.0.0", note={"type": "text"},
                                            attachment={"type": "files"}))
    found = [tuple(json.loads(v) if isinstance(v, str) and v.startswith("[") else v for v in row)
             for row in rows(engine, "title", "attachment", "attachment__id")]
    assert found == [("A", ["a.pdf"], [1]), ("B", ["b.txt"], [2]), ("C", None, None)]
    # ... and back, one file per row.
    install(engine, registry, dossiers_pack(tmp_path, "4.0.0", note={"type": "text"}))
    assert rows(engine, "title", "attachment", "attachment__id", "attachment__type") == [
        ("A", "a.pdf", 1, "application/pdf"), ("B", "b.txt", 2, "text/plain"), ("C", None, None, None)]


# --- the app ------------------------------------------------------------------------------------------
@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "files"
    monkeypatch.setenv(STORAGE_VARIABLE, str(folder))
    monkeypatch.setenv("SLATECRM_MAX_UPLOAD_BYTES", "200000")
    return folder


ROLE = """\
kind: role
name: clerk
label: Clerk
entities:
  dossier:
    actions: [create, read, update, delete]
    scope: own
"""


VIEWER = """\
kind: role
name: viewer
entities:
  dossier:
    actions: [read]
    scope: all
    fields:
      photo: hidden
"""


@pytest.fixture
def archive(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path,
            storage: Path) -> Iterator[TestClient]:
    pack = dossiers_pack(tmp_path)
    (pack / "roles").mkdir()
    (pack / "roles" / "clerk.yaml").write_text(ROLE)
    (pack / "roles" / "viewer.yaml").write_text(VIEWER)
    install(engine, registry, pack)
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def upload(client: TestClient, data: bytes, name: str) -> dict[str, Any]:
    response = client.post("/api/v1/_files", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def make(client: TestClient, **values: object) -> dict[str, Any]:
    response = client.post("/api/v1/dossier", json={"title": "D", **values})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def patch(client: TestClient, record: int, **values: object) -> Any:
    version = client.get(f"/api/v1/dossier/{record}").json()["version"]
    return client.patch(f"/api/v1/dossier/{record}", json={**values, "version": version})


def stored(engine: sa.Engine) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(system.files)).mappings()}


def kept_bytes(storage: Path) -> list[Path]:
    return sorted(p for p in storage.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_api_round_trip_upload_attach_download_replace(archive: TestClient, engine: sa.Engine,
                                                       storage: Path) -> None:
    pdf = upload(archive, PDF, "offer.pdf")
    assert pdf["content_type"] == "application/pdf" and pdf["size"] == len(PDF) and not pdf["attached"]
    assert pdf["url"] == f"/api/v1/_files/{pdf['id']}/content"
    picture = upload(archive, png(), "../../etc/face.PNG")
    assert picture["name"] == "face.PNG" and picture["image"]
    assert (picture["width"], picture["height"]) == (300, 200)
    note = upload(archive, b"plain words\n", "note.txt")
    made = make(archive, attachment=pdf["id"], photo={"id": picture["id"], "name": "lies.exe"},
                papers=[note["id"]])
    assert made["attachment"] == {"id": pdf["id"], "name": "offer.pdf", "content_type": "application/pdf"}
    # The name and type are the file table's, not what the client said.
    assert made["photo"] == {"id": picture["id"], "name": "face.PNG", "content_type": "image/png"}
    assert made["papers"] == [{"id": note["id"], "name": "note.txt", "content_type": "text/plain"}]
    assert archive.get(f"/api/v1/_files/{pdf['id']}").json()["attached"] is True

    got = archive.get(f"/api/v1/_files/{pdf['id']}/content")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith('attachment; filename="offer.pdf"')
    assert got.headers["x-content-type-options"] == "nosniff"
    ui = archive.get(f"/files/{picture['id']}")
    assert ui.status_code == 200 and ui.content == png()
    thumb = archive.get(f"/files/{picture['id']}/thumbnail?size=64")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 43)
    assert archive.get(f"/files/{pdf['id']}/thumbnail").status_code == 404  # not an image
    assert len(kept_bytes(storage)) == 4  # three files and the thumbnail

    # The same value again changes nothing; another file replaces it, and the old one is
    # deleted once the change committed.
    same = patch(archive, made["id"], attachment=made["attachment"])
    assert same.status_code == 200 and same.json()["version"] == made["version"]
    other = upload(archive, PDF + b"%2", "offer-v2.pdf")
    changed = patch(archive, made["id"], attachment=other["id"], papers=[note["id"], pdf["id"]])
    assert changed.status_code == 422  # offer.pdf was still this record's: it is another field's now
    changed = patch(archive, made["id"], attachment=other["id"])
    assert changed.status_code == 200, changed.text
    assert changed.json()["attachment"]["name"] == "offer-v2.pdf"
    assert pdf["id"] not in stored(engine)
    assert archive.get(f"/api/v1/_files/{pdf['id']}/content").status_code == 404
    # Removing the photo deletes it and its thumbnail.
    assert patch(archive, made["id"], photo=None).status_code == 200
    assert picture["id"] not in stored(engine)
    assert len(kept_bytes(storage)) == 2
    # Deleting the record deletes its files.
    version = archive.get(f"/api/v1/dossier/{made['id']}").json()["version"]
    deleted = archive.delete(f"/api/v1/dossier/{made['id']}", headers={"If-Match": str(version)})
    assert deleted.status_code == 204
    assert stored(engine) == {} and kept_bytes(storage) == []


def test_a_rolled_back_delete_keeps_the_files(archive: TestClient, engine: sa.Engine, storage: Path) -> None:
    pdf = upload(archive, PDF, "keep.pdf")
    made = make(archive, attachment=pdf["id"])
    records = archive.app.state.records  # type: ignore[attr-defined]

    def fail(conn: sa.Connection) -> None:
        raise RuntimeError("the commit fails")
    records.pipeline.hooks.before_commit.append(fail)
    try:
        with pytest.raises(RuntimeError):
            records.delete("dossier", made["id"])
        with pytest.raises(RuntimeError):
            records.update("dossier", made["id"], {"attachment": None}, version=made["version"])
    finally:
        records.pipeline.hooks.before_commit.remove(fail)
    assert stored(engine)[pdf["id"]]["released_at"] is None
    assert archive.get(f"/api/v1/_files/{pdf['id']}/content").content == PDF
    # A later committed write elsewhere does not delete it either.
    make(archive, title="Other")
    assert len(kept_bytes(storage)) == 1 and pdf["id"] in stored(engine)


def test_downloads_follow_the_records_access_rules(archive: TestClient, db_url: str) -> None:
    app = archive.app
    with signed_in(app, "ann@example.com", roles=["clerk"], raise_server_exceptions=False) as ann, \
            signed_in(app, "bob@example.com", roles=["clerk"], raise_server_exceptions=False) as bob:  # type: ignore[arg-type]
        mine = upload(ann, PDF, "ann.pdf")
        # Bob cannot see Ann's upload, nor attach it to a record of his.
        assert bob.get(f"/api/v1/_files/{mine['id']}").status_code == 404
        refused = bob.post("/api/v1/dossier", json={"title": "Bob's", "attachment": mine["id"]})
        assert refused.status_code == 422
        assert f"there is no file with id {mine['id']} to attach" in refused.json()["errors"]["attachment"][0]
        made = make(ann, title="Ann's", attachment=mine["id"])
        assert ann.get(f"/files/{mine['id']}").content == PDF
        # Bob cannot read Ann's record (scope: own), so not its file either: 404, as if none.
        assert bob.get(f"/api/v1/dossier/{made['id']}").status_code == 404
        for path in (f"/files/{mine['id']}", f"/api/v1/_files/{mine['id']}/content",
                     f"/api/v1/_files/{mine['id']}", f"/files/{mine['id']}/thumbnail"):
            assert bob.get(path).status_code == 404, path
        # An administrator reads every record, and so its files.
        assert archive.get(f"/api/v1/_files/{mine['id']}/content").content == PDF
        # Once attached, a file is its record's: nobody attaches it to another one.
        again = make(archive, title="Admin's")
        taken = patch(archive, again["id"], attachment=mine["id"])
        assert taken.status_code == 422 and "attachment" in taken.json()["errors"]
    # A field hidden from a role hides its files too, on records the role reads.
    photo = upload(archive, png(), "face.png")
    shown = make(archive, title="Both", attachment=upload(archive, PDF, "both.pdf")["id"], photo=photo["id"])
    with signed_in(app, "vic@example.com", roles=["viewer"], raise_server_exceptions=False) as vic:  # type: ignore[arg-type]
        assert vic.get(f"/files/{shown['attachment']['id']}").content == PDF
        assert vic.get(f"/files/{photo['id']}").status_code == 404
        assert vic.get(f"/files/{photo['id']}/thumbnail").status_code == 404
        # A role that writes no record with a file field may not upload.
        refused = vic.post("/api/v1/_files", files={"file": ("x.pdf", PDF, "application/pdf")})
        assert refused.status_code == 403 and "may not upload files" in refused.json()["detail"]


def test_an_html_file_named_png_is_never_served_as_html(archive: TestClient) -> None:
    evil = upload(archive, HTML, "cat.png")
    assert evil["content_type"] == "text/html" and not evil["image"]
    refused = archive.post("/api/v1/dossier", json={"title": "X", "photo": evil["id"]})
    assert refused.status_code == 422
    assert "cat.png is not an image (text/html)" in refused.json()["errors"]["photo"][0]
    made = make(archive, attachment=evil["id"])
    got = archive.get(f"/files/{evil['id']}")
    assert got.status_code == 200 and got.content == HTML
    assert got.headers["content-type"] == "application/octet-stream"  # never text/html
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    assert archive.get(f"/files/{evil['id']}/thumbnail").status_code == 404
    page = archive.get(f"/e/dossier/{made['id']}").text
    assert f'href="/files/{evil["id"]}" download>cat.png</a>' in page
    assert f'src="/files/{evil["id"]}' not in page  # shown as a link, never inline


def test_size_limits_and_accepted_types(archive: TestClient) -> None:
    big = upload(archive, b"x" * 5000, "big.txt")
    refused = archive.post("/api/v1/dossier", json={"title": "X", "attachment": big["id"]})
    assert refused.status_code == 422
    assert "big.txt is 5,000 bytes; at most 4,000 are allowed" in refused.json()["errors"]["attachment"][0]
    zipped = upload(archive, b"PK\x05\x06" + b"\x00" * 18, "archive.zip")
    wrong = archive.post("/api/v1/dossier", json={"title": "X", "papers": [zipped["id"]]})
    assert wrong.status_code == 422 and "allowed: application/pdf, text/plain, image/*" in \
        wrong.json()["errors"]["papers"][0]
    many = [upload(archive, PDF + bytes([i]), f"{i}.pdf")["id"] for i in range(4)]
    too_many = archive.post("/api/v1/dossier", json={"title": "X", "papers": many})
    assert too_many.status_code == 422 and "at most 3 are allowed" in too_many.json()["errors"]["papers"][0]
    # The deployment's cap (SLATECRM_MAX_UPLOAD_BYTES=200000 here) refuses the upload itself.
    huge = archive.post("/api/v1/_files", files={"file": ("huge.bin", b"\x00" * 200_001, "application/pdf")})
    assert huge.status_code == 413 and "200,000 bytes" in huge.json()["detail"]
    # An upload is multipart, with a part named "file".
    assert archive.post("/api/v1/_files", json={"file": "x"}).status_code == 415
    assert archive.post("/api/v1/_files", data={"other": "x"}, files={"x": ("a", b"a")}).status_code == 400


@pytest.mark.parametrize("value", [True, -1, 0, 2**70, "abc", "1e3", 1.5, [1], {"id": "x"}, {"name": "a.pdf"},
                                   "\u0661", 999_999_999], ids=repr)
def test_hostile_values_are_refused_naming_the_field(archive: TestClient, value: object) -> None:
    refused = archive.post("/api/v1/dossier", json={"title": "Odd", "attachment": value})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["attachment"]
    listed = archive.post("/api/v1/dossier", json={"title": "Odd", "papers": [value]})
    assert listed.status_code == 422 and listed.json()["errors"]["papers"], listed.text
    assert 400 <= archive.get("/api/v1/dossier", params={"attachment": str(value)}).status_code < 500


def test_form_uploads_without_javascript_and_pages_show_thumbnails(archive: TestClient,
                                                                   engine: sa.Engine) -> None:
    form = archive.get("/e/dossier/new").text
    assert 'enctype="multipart/form-data"' in form
    assert 'type="file"' in form and 'accept="image/png,image/jpeg,image/gif,image/webp"' in form
    assert 'name="papers" type="file" multiple' in form
    fields = ["title", "attachment", "photo", "papers"]
    made = archive.post("/e/dossier/new", data={"title": "Scanned", "_fields": fields},
                        files=[("photo", ("me.png", png(), "image/png")), ("attachment", ("", b"", "")),
                               ("papers", ("a.pdf", PDF, "application/pdf")),
                               ("papers", ("b.txt", b"two words", "text/plain"))], follow_redirects=False)
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    record = archive.get("/api/v1/dossier/" + location.rsplit("/", 1)[1]).json()
    assert record["attachment"] is None and record["photo"]["name"] == "me.png"
    assert [p["name"] for p in record["papers"]] == ["a.pdf", "b.txt"]
    page = archive.get(location).text
    photo = record["photo"]["id"]
    assert f'<img class="thumbnail" src="/files/{photo}/thumbnail?size=64" alt="me.png"' in page
    assert f'href="/files/{record["papers"][1]["id"]}" download>b.txt</a>' in page
    listed = archive.get("/e/dossier?columns=title,photo,papers").text
    assert f'src="/files/{photo}/thumbnail?size=64"' in listed

    # The edit form keeps what it holds unless told; unticking a paper removes it; a file
    # refused by the field (an HTML page as the photo) is an error on the field, nothing lost.
    edit = archive.get(location + "/edit").text
    assert f'name="photo__keep" value="{photo}"' in edit and 'name="photo__remove"' in edit
    was = {"_was.title": "Scanned", "_was.attachment": "", "_was.attachment__keep": "",
           "_was.attachment__remove": "", "_was.photo": "", "_was.photo__keep": str(photo),
           "_was.photo__remove": "", "_was.papers": "",
           "_was.papers__keep": [str(p["id"]) for p in record["papers"]]}
    kept_paper = record["papers"][0]["id"]
    bad = archive.post(location + "/edit", data={
        "title": "Scanned", "version": str(record["version"]), "_fields": fields, **was,
        "photo__keep": str(photo), "papers__keep": [str(kept_paper)]},
        files=[("photo", ("page.png", HTML, "image/png"))])
    assert bad.status_code == 422 and "page.png is not an image (text/html)" in bad.text
    saved = archive.post(location + "/edit", data={
        "title": "Scanned", "version": str(record["version"]), "_fields": fields, **was,
        "photo__keep": str(photo), "papers__keep": [str(kept_paper)]}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    after = archive.get("/api/v1/dossier/" + location.rsplit("/", 1)[1]).json()
    assert after["photo"]["id"] == photo and [p["name"] for p in after["papers"]] == ["a.pdf"]
    assert record["papers"][1]["id"] not in stored(engine)
    removed = archive.post(location + "/edit", data={
        "title": "Scanned", "version": str(after["version"]), "_fields": fields, **was,
        "_was.papers__keep": [str(kept_paper)], "photo__keep": str(photo), "photo__remove": "1",
        "papers__keep": [str(kept_paper)]}, follow_redirects=False)
    assert removed.status_code == 303, removed.text
    assert archive.get("/api/v1/dossier/" + location.rsplit("/", 1)[1]).json()["photo"] is None
    assert photo not in stored(engine)


def test_a_form_with_files_carries_its_csrf_token_before_the_files(archive: TestClient) -> None:
    """A browser without JavaScript sends the token as the form's first field (no header)."""
    token = archive.headers.pop("x-csrftoken")
    try:
        photo = ("photo", ("me.png", png(), "image/png"))
        good = archive.post("/e/dossier/new", files=[photo], follow_redirects=False,
                            data={"csrftoken": token, "title": "T", "_fields": ["title", "photo"]})
        assert good.status_code == 303, good.text
        for data in ({"csrftoken": "forged", "title": "T"}, {"title": "T"}):
            refused = archive.post("/e/dossier/new", data=data, files=[photo], follow_redirects=False)
            assert refused.status_code == 403 and "CSRF token" in refused.json()["detail"]
        # The token after a file: refused, as asgi-csrf refuses it.
        body = (b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n\r\nxx\r\n"
                b"--b\r\nContent-Disposition: form-data; name=\"csrftoken\"\r\n\r\n" + token.encode()
                + b"\r\n--b--\r\n")
        late = archive.post("/e/dossier/new", content=body,
                            headers={"content-type": "multipart/form-data; boundary=b"})
        assert late.status_code == 403 and "before its files" in late.json()["detail"]
    finally:
        archive.headers["x-csrftoken"] = token
    assert archive.get("/api/v1/dossier").json()["data"][0]["photo"]["name"] == "me.png"


def test_csv_export_lists_the_file_names(archive: TestClient) -> None:
    a, b = upload(archive, PDF, "offer.pdf"), upload(archive, b"one", "one.txt")
    c = upload(archive, b"two", "two.txt")
    make(archive, title="A", attachment=a["id"], papers=[b["id"], c["id"]])
    make(archive, title="B")
    text = archive.get("/e/dossier/export.csv?sort=title&columns=title,attachment,papers").text
    exported = list(csv.reader(io.StringIO(text)))
    assert exported[0] == ["id", "Title", "Attachment", "Papers"]
    assert [r[1:] for r in exported[1:]] == [["A", "offer.pdf", "one.txt, two.txt"], ["B", "", ""]]


def test_list_filters_with_rules(archive: TestClient) -> None:
    a = make(archive, title="A", attachment=upload(archive, PDF, "offer.pdf")["id"])
    b = make(archive, title="B", papers=[upload(archive, b"x", "x.txt")["id"]])
    c = make(archive, title="C")

    def ids(text: str) -> list[int]:
        response = archive.get("/api/v1/dossier", params={"filter": text})
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])
    assert ids("attachment is blank") == sorted([b["id"], c["id"]])
    assert ids("attachment is not blank") == [a["id"]]
    assert ids('attachment matches "[.]pdf$"') == [a["id"]]
    assert ids("papers is blank") == sorted([a["id"], c["id"]])
    assert ids('papers contains "x.txt"') == [b["id"]]


def test_openapi_describes_uploads_and_values(archive: TestClient) -> None:
    document = archive.get("/api/v1/openapi.json").json()
    upload_operation = document["paths"]["/api/v1/_files"]["post"]
    assert "multipart/form-data" in upload_operation["requestBody"]["content"]
    assert upload_operation["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StoredFile"}
    assert "/api/v1/_files/{id}/content" in document["paths"]
    schemas = document["components"]["schemas"]
    read = schemas["Dossier"]["properties"]
    assert {"type": "null"} in read["attachment"]["anyOf"]
    file_schema = next(s for s in read["attachment"]["anyOf"] if s.get("type") == "object")
    assert file_schema["required"] == ["id", "name", "content_type"]
    assert next(s for s in read["papers"]["anyOf"] if s.get("type") == "array")["items"] == file_schema
    written = schemas["DossierInput"]["properties"]["attachment"]
    assert {"type": "integer", "minimum": 1} .items() <= next(
        s for s in written["anyOf"] if "anyOf" in s)["anyOf"][0].items()


def test_another_user_signed_in_later_cannot_attach_my_upload(archive: TestClient) -> None:
    mine = upload(archive, PDF, "mine.pdf")
    sign_in(archive, "carl@example.com", roles=["clerk"])
    refused = archive.post("/api/v1/dossier", json={"title": "C", "attachment": mine["id"]})
    assert refused.status_code == 422


# --- the rule language: SQL and Python agree ------------------------------------------------
CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))
NAMES = ["a.pdf", "b.txt", "photo.png", "offer.PDF"]
files_values = st.lists(st.one_of(st.none(), st.sampled_from(NAMES)), min_size=1, max_size=10)
lists_values = st.lists(st.one_of(st.none(), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3,
                                                      unique=True)), min_size=1, max_size=10)
RULES = ["attachment is blank", "attachment is not blank", 'attachment matches "[.]pdf$"',
         'attachment = "b.txt"', 'attachment contains "o"', "papers is blank", "papers is not blank",
         'papers contains "a.pdf"', 'not (papers contains "b.txt")']


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attachments=files_values, papers=lists_values, rule=st.sampled_from(RULES))
def test_rule_filters_select_the_same_records_in_sql_and_python(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path_factory: pytest.TempPathFactory,
        attachments: list[str | None], papers: list[list[str] | None], rule: str) -> None:
    if not sa.inspect(engine).has_table("x_dossier"):  # once per database, not per example
        install(engine, registry, dossiers_pack(tmp_path_factory.mktemp("archive")))
    with engine.connect() as conn:
        number, metamodel = revisions.current_metamodel(conn)
    runtime = build_runtime(number, metamodel, registry)
    entity = compile_entities(metamodel.entities, runtime.tables, registry)["dossier"]
    count = max(len(attachments), len(papers))

    def at(values: list[Any], i: int) -> Any:
        return values[i - 1] if i <= len(values) else None

    def file(index: int, name: str | None) -> dict[str, Any] | None:
        return None if name is None else {"id": index, "name": name, "content_type": "text/plain"}
    with engine.begin() as conn:
        conn.execute(entity.table.delete())
        conn.execute(entity.table.insert(), [
            {"id": i, "created_at": NOW, "updated_at": NOW, "version": 1,
             **entity.fields["title"].to_row(f"R{i}"),
             **entity.fields["attachment"].to_row(file(i, at(attachments, i))),
             **entity.fields["papers"].to_row(
                 [file(100 * i + k, n) for k, n in enumerate(at(papers, i) or [])] or None)}
            for i in range(1, count + 1)])
    checked = check(rule, metamodel, "dossier")
    closure = compile_python(checked.typed)
    with engine.connect() as conn:
        records = [{"id": r["id"], **{n: f.from_row(r) for n, f in entity.fields.items()}}
                   for r in conn.execute(entity.select.order_by(entity.table.c.id)).mappings()]
        where = SqlCompiler(runtime.tables, engine.dialect.name, registry).condition(checked.typed, "dossier")
        in_sql = set(conn.execute(sa.select(entity.table.c.id).where(where(CONTEXT))).scalars())
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    assert in_python == in_sql, f"{rule}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"
    if rule == "attachment is blank":
        assert in_sql == {i for i in range(1, count + 1) if at(attachments, i) is None}


# --- storage backends ----------------------------------------------------------------------
class MemoryFiles:
    """A backend a plugin could give (an S3-compatible one is the same four methods)."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def put(self, key: str, data: Any) -> None:
        self.kept[key] = data.read()

    def open(self, key: str) -> Any:
        if key not in self.kept:
            raise FileNotFoundError(key)
        return io.BytesIO(self.kept[key])

    def delete(self, key: str) -> None:
        self.kept.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.kept


def test_a_plugin_stores_files_at_its_own_urls(tmp_path: Path) -> None:
    from slatecrm.platform.files.backends import LocalDirectory, StorageSettingError
    from slatecrm.platform.files.settings import files_from_environment
    from slatecrm.plugins.hookspecs import hookimpl

    from .defaults import plugin_manager

    memory = MemoryFiles()

    class Plugin:
        @hookimpl
        def slatecrm_file_storage(self, url: str) -> Any:
            return memory if url.startswith("mem://") else None

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    plugins = plugin_manager()
    plugins.register(Plugin())
    store = files_from_environment(engine, plugins, {STORAGE_VARIABLE: "mem://bucket"})
    assert store.backend is memory
    # Unset: a folder beside the SQLite database; a folder or a file: URL: the local backend.
    default = files_from_environment(engine, plugins, {}).backend
    assert isinstance(default, LocalDirectory) and default.root == tmp_path / "crm.db-files"
    named = files_from_environment(engine, plugins, {STORAGE_VARIABLE: f"file://{tmp_path}/kept"}).backend
    assert isinstance(named, LocalDirectory) and named.root == tmp_path / "kept"
    with pytest.raises(StorageSettingError, match="SLATECRM_FILE_STORAGE='s3://b': no installed plugin"):
        files_from_environment(engine, plugins, {STORAGE_VARIABLE: "s3://b"})
    with pytest.raises(StorageSettingError, match="SLATECRM_MAX_UPLOAD_BYTES='ten'"):
        files_from_environment(engine, plugins, {"SLATECRM_MAX_UPLOAD_BYTES": "ten"})
    with pytest.raises(ValueError, match="is not a storage key"):
        LocalDirectory(tmp_path).put("../escape", io.BytesIO(b"x"))
    engine.dispose()
