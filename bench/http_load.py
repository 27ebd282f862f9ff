"""stub"""
from __future__ import annotations
from typing import Any

def run(*args: Any) -> list[Any]:
    return []
