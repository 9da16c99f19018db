"""Model providers, chosen by name in the job spec."""

from __future__ import annotations

from ..protocol import ModelSettings
from .base import ModelError, ModelTurn, Provider, ToolCall

PROVIDER_NAMES = ("offline", "openai")


def make_provider(settings: ModelSettings) -> Provider:
    if settings.provider == "offline":
        from .offline import OfflineProvider

        return OfflineProvider(settings)
    if settings.provider == "openai":
        from .openai import OpenAIProvider

        return OpenAIProvider(settings)
    raise ModelError(f"unknown model provider {settings.provider!r} (known: {', '.join(PROVIDER_NAMES)})")


__all__ = ["ModelError", "ModelTurn", "Provider", "ToolCall", "make_provider", "PROVIDER_NAMES"]
