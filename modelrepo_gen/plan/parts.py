"""One declared model of a pipeline, as the resolver reads it from the composed config."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelrepo_gen.components.base import Component
from modelrepo_gen.core.signature import Signature


@dataclass
class Part:
    """One declared model: its component, typed settings, and where a user overrides them."""

    role: str
    component: Component
    settings: Any
    where: str  # e.g. `model` for `acoustic_model: ${model}`
    signature: Signature
    # Setting -> the key a user overrides, for settings that only repeat another key
    # (`path: ${model.path}` under pipeline.models.network: model.path).
    user_keys: dict[str, str] = field(default_factory=dict)

    def in_user_terms(self, text: str) -> str:
        """`text` with each repeated setting named by the key a user overrides."""
        for setting, key in self.user_keys.items():
            text = re.sub(rf"{re.escape(setting)}(?![A-Za-z0-9_])", key, text)
        return text
