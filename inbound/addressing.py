"""How the seam names an account's conversations to Temporal: keyed references (never a
chat or user id), workflow ids, and the options a conversation's run starts with."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from inbound.incoming import Account
from inbound.send_queue import send_task_queue
from workflows import attributes
from workflows.ids import chat_reference, conversation_workflow_id, sender_reference
from workflows.payloads import ConversationConfig, ConversationInput, ConversationRef


class ConversationAddress:
    def __init__(
        self, account: Account, config: ConversationConfig, task_queue: str, hash_key: bytes
    ) -> None:
        self._account = account
        self._config = config
        self._task_queue = task_queue
        self._hash_key = hash_key

    def use_config(self, config: ConversationConfig) -> None:
        """The account's settings changed (Ingestor.reconfigure)."""
        self._config = config

    def chat_ref(self, chat_id: int, topic_id: int | None) -> str:
        return chat_reference(self._hash_key, self._account.key, chat_id, topic_id)

    def workflow_id(self, chat_id: int, topic_id: int | None) -> str:
        return conversation_workflow_id(self._account.key, self.chat_ref(chat_id, topic_id))

    def sender(self, sender_id: int) -> int:
        # Signals carry a keyed number for the sender, never the Telegram user id.
        return sender_reference(self._hash_key, self._account.key, sender_id)

    def ref(self, chat_id: int, topic_id: int | None, conversation_id: int) -> ConversationRef:
        return ConversationRef(
            account_key=self._account.key,
            account_id=self._account.id,
            conversation_id=conversation_id,
            chat_ref=self.chat_ref(chat_id, topic_id),
        )

    def input(self, ref: ConversationRef) -> ConversationInput:
        return ConversationInput(
            ref, self._config, send_task_queue(self._task_queue, ref.account_key)
        )

    def start_options(self, ref: ConversationRef) -> dict[str, Any]:
        return {
            "id": conversation_workflow_id(ref.account_key, ref.chat_ref),
            "task_queue": self._task_queue,
            "static_summary": f"conversation of {ref.account_key}, chat {ref.chat_ref}",
            "search_attributes": self._search_attributes(ref),
        }

    def _search_attributes(self, ref: ConversationRef) -> TypedSearchAttributes | None:
        if not self._config.search_attributes:
            return None
        return TypedSearchAttributes(
            [
                SearchAttributePair(attributes.ACCOUNT, ref.account_key),
                SearchAttributePair(attributes.CHAT_REF, ref.chat_ref),
                # What the run would upsert first; set here, it costs no history event.
                SearchAttributePair(attributes.PHASE, attributes.ACTIVE),
            ]
        )
