"""The platform asks a field type; it never branches on a type's name (docs/decisions.md,
"Field types own their behaviour"). This test fails when a module or template of
slatecrm/platform compares a field's type with a name, or quotes a registered type's name
outside the places decisions.md justifies."""

from __future__ import annotations

import re
from pathlib import Path

from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, FieldType

from .defaults import field_types

PLATFORM = Path(__file__).parent.parent / "slatecrm" / "platform"
#: Files still allowed to branch on a type's name (none: the write pipeline asks the type too).
PENDING: set[str] = set()
#: Quoted names that are not field types where they appear (docs/decisions.md):
#: rule-language kinds, JSON Schema types, HTML input types, the stage-history column.
NOT_FIELD_TYPES = {
    # a user's e-mail address (a column of the platform's own user table), not the field type
    "cli_users.py": {"email"},
    "identity/users.py": {"email"},
    "identity/memberships.py": {"email"},  # the audit detail of a user's roles and teams
    "identity/userattributes.py": {"email"},  # the audit entry names the user's e-mail
    "web/login.py": {"email"},  # the login form's e-mail input
    "web/templates/login.html": {"email"},
    "records/rulesql.py": {"boolean", "number", "reference", "text", "date", "datetime", "time"},
    "records/stages.py": {"datetime"},
    "records/pipeline.py": {"stage"},
    "records/inserts.py": {"stage"},
    "records/keyset.py": {"date", "time"},  # cursor tags of values, not field types
    # OpenAPI's operation "tags" and the audit entry's IP address, not field types
    "web/openapi.py": {"integer", "boolean", "stage", "tags", "address"},
    "web/openapi_records.py": {"integer"},
    "web/board_pages.py": {"stage"},
    # the calendar's query and form parameters, and the rule kinds of the fields it places
    "web/calendar_moves.py": {"date", "datetime"},
    "web/calendar_pages.py": {"date", "datetime", "duration"},
    "web/calendar_spec.py": {"date", "datetime", "duration"},
    "web/templates/calendar.html": {"date", "duration"},
    # the designer: JSON Schema types of a type's settings, a new field's first choice of
    # type in its form (any type may be picked), path parameters and an HTML input type
    "web/designer_forms.py": {"integer"},
    "web/designer_pipelines.py": {"stage", "text"},
    "web/templates/designer_field.html": {"color"},
    "web/templates/designer_packs.html": {"file"},
    "web/api.py": {"stage"},
    "web/admin.py": {"stage"},
    "web/record_pages.py": {"stage"},
    "web/templates/record.html": {"stage"},
    "web/templates/widgets/text.html": {"text"},
    "web/templates/widgets/tags.html": {"text"},  # the HTML input type of the box that adds tags
    "web/templates/widgets/parts.html": {"text"},
    "web/templates/widgets/email.html": {"email"},
    "web/templates/widgets/url.html": {"url"},
    "web/templates/widgets/date.html": {"date"},
    "web/templates/widgets/time.html": {"time"},  # HTML input types
    "web/templates/widgets/date_or_datetime.html": {"date", "time"},
    # a workflow's trigger kind (at a time relative to a date field), not the field type
    "workflows/console.py": {"time"},
    "workflows/jobs.py": {"time"},
    "workflows/outbox.py": {"time"},
    "workflows/schedules.py": {"time"},
    "web/templates/widgets/number.html": {"decimal"},
    "web/templates/widgets/currency.html": {"currency", "decimal"},
    "web/templates/widgets/reference.html": {"reference"},
    "sampledata.py": {"email", "phone", "address"},  # name hints of text fields
    # a pack's files (the JSON of `pack export`); a pipeline's stages (kinds of definitions that
    # `pack diff` compares, and the stage a pack's extension adds)
    "cli_packlife.py": {"files"},
    "packdiff.py": {"stage"},
    # a pack's files, slate_file.image, the audit log's IP address column
    "storage/system.py": {"stage", "email", "files", "image", "address"},
    # workflow action kinds (an e-mail action, a move to a stage), not field types
    "workflows/actions.py": {"stage", "email"},
    "workflows/registry.py": {"email"},
    # users' e-mails, JSON Schema types and HTML input types of the identity routes and pages
    "cli_tokens.py": {"email"},
    "web/identity_common.py": {"text"},
    "web/me_api.py": {"email"},
    "web/openapi_identity.py": {"boolean", "email", "integer", "tags"},
    "web/openapi_workflows.py": {"boolean", "integer", "tags"},
    "web/templates/me.html": {"text"},
    "web/templates/user.html": {"email"},
    "web/users_api.py": {"email"},
    # uploaded files (platform/files/): the `file:` URL scheme, a stored file's `image` flag and
    # default name, the 404 that names a file, the upload's part and HTML input type "file",
    # JSON Schema types; htmx's own words
    "files/backends.py": {"file"},
    "files/store.py": {"file", "image"},
    "records/service.py": {"file"},
    "web/uploads.py": {"file", "url"},
    # ... and OpenAPI's operation "tags" (the group "Files" of the upload routes)
    "web/openapi_files.py": {"boolean", "file", "image", "integer", "url", "tags"},
    "web/templates/widgets/file.html": {"file"},
    "web/templates/widgets/files.html": {"file"},
    "web/static/vendor/htmx.min.js": {"file", "image"},
    "web/users_pages.py": {"email"},
    "identity/auditlog.py": {"address"},  # a request's IP address
    "web/teams_pages.py": {"emails"},  # a team page's list of members' e-mails
}
BRANCH = re.compile(r"field\.type\s*(==|!=|\bin\b|\bnot in\b)|\.field\.type\b")


def platform_files() -> list[Path]:
    # Not the third-party scripts fetched into static/vendor/ (the rich text editor's options
    # name colours): they are no part of the platform.
    return sorted(p for p in PLATFORM.rglob("*") if p.suffix in (".py", ".html", ".js")
                  and p.relative_to(PLATFORM).as_posix() not in PENDING
                  and not p.relative_to(PLATFORM).as_posix().startswith("web/static/vendor/"))


def test_no_platform_module_compares_a_field_type_with_a_name() -> None:
    found = [f"{p.relative_to(PLATFORM)}:{n}: {line.strip()}" for p in platform_files()
             for n, line in enumerate(p.read_text().splitlines(), 1) if BRANCH.search(line)]
    assert found == []


#: Field type names that are first a platform concept: "user" (the principal, the user
#: table, the audit log's actor) appears across the platform as such; the `user` field
#: type's own behaviour is in its module, which the platform reaches through `links_users`.
PLATFORM_WORDS = {"user"}


def test_no_platform_module_names_a_field_type() -> None:
    names = ({t.name for t in field_types()} | {"rich_text"}) - PLATFORM_WORDS
    quoted = re.compile(r"""["']({})["']""".format("|".join(sorted(names))))
    found = []
    for path in platform_files():
        where = path.relative_to(PLATFORM).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for match in quoted.finditer(line):
                if match.group(1) not in NOT_FIELD_TYPES.get(where, set()):
                    found.append(f"{where}:{n}: {line.strip()}")
    assert found == []


def test_every_builtin_type_answers_the_whole_contract() -> None:
    """Each type says where it goes; a wrong section or a widget that does not exist fails."""
    widgets = PLATFORM / "web" / "templates"
    for field_type in BUILTIN_TYPES:
        assert isinstance(field_type, FieldType)
        assert (widgets / field_type.widget_template).is_file(), field_type.name
        assert field_type.section in ("details", "related", "notes")
        assert not field_type.summable or field_type.sortable
