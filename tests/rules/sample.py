"""A small metamodel for rule tests: a deal that refers to a company, every value type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform import installer

from ..packs import write_pack

COMPANY: dict[str, Any] = {
    "title_field": "name",
    "fields": {
        "name": {"type": "text"},
        "size": {"type": "integer"},
        "rating": {"type": "decimal", "precision": 6, "scale": 1},
        "parent": {"type": "reference", "target": "company", "on_delete": "set_null"},
    },
}
DEAL: dict[str, Any] = {
    "title_field": "name",
    "fields": {
        "name": {"type": "text"},
        "amount": {"type": "decimal", "precision": 12, "scale": 2},
        "quantity": {"type": "integer"},
        "won": {"type": "boolean"},
        "close_date": {"type": "date"},
        "signed_at": {"type": "datetime"},
        "kind": {"type": "choice", "options": [{"key": "new"}, {"key": "renewal"}, {"key": "upsell"}]},
        "tags": {"type": "multi_choice", "options": [{"key": "hot"}, {"key": "cold"}, {"key": "vip"}]},
        "price": {"type": "currency", "currency": "EUR"},
        "company": {"type": "reference", "target": "company", "on_delete": "set_null"},
    },
    "pipelines": {"sales": {"field": "stage", "stages": [
        {"key": "lead"}, {"key": "qualified"}, {"key": "proposal"}, {"key": "won", "category": "won"},
        {"key": "lost", "category": "lost"}]}},
}


def sample_pack(root: Path) -> Path:
    return write_pack(root, "sample", "1.0.0", {"company": COMPANY, "deal": DEAL})


def sample_metamodel(root: Path, registry: FieldTypeRegistry) -> Metamodel:
    from slatecrm.metamodel.layering import merge

    return merge(installer.load_packs([str(sample_pack(root))], registry), registry)
