"""The LULL_SECRET_KEY every test process uses, so what a test seals its CLI can open."""

from __future__ import annotations

from db.sealed import SecretBox

# A fixed test key (not a secret: it seals test data only).
TEST_SECRET_KEY = "test:" + "dGVzdC1rZXktMzItYnl0ZXMtbG9uZy0wMDAwMDAwMDA="
TEST_BOX = SecretBox.parse(TEST_SECRET_KEY)
# The LULL_CHAT_HASH_KEY of test processes that use a configured database.
TEST_CHAT_HASH_KEY = "test-chat-hash-key-not-secret"
