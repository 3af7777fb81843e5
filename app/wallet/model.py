"""The Wallet value: one registered wallet as the registry and its folder describe it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Wallet:
    path: Path
    index: int
    active: bool
    online: bool
    type: str = "local"

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "wallet_name": self.name,
            "wallet_path": str(self.path),
            "location": str(self.path.parent),
            "active": self.active,
            "online": self.online,
        }
