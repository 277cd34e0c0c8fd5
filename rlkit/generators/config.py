"""The built-in generators' ``Config`` dataclasses: the schemas of the ``generator`` group.

Free of torch, so that composing a config never imports it; the entry point names the
Config, whose ``component`` names the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlkit.schema import at_least


@dataclass
class HFGeneratorConfig:
    """Batched sampling with a transformers model and a KV cache, in the trainer's process."""

    component: ClassVar[str] = "rlkit.generators.hf:HFGenerator"

    #: Most sequences decoded together; prompts x n are processed in chunks of this size.
    batch_size: int = field(default=64, metadata=at_least(1))
