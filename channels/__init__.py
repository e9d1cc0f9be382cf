"""Channels: where messages come from and replies go (console, replay, Telegram)."""
