"""A burst typed fast, through the real listener: a chat's next message goes to the seam
once the one before it is recorded, so the chat keeps its order while messages that meet
in flight share a signal (inbound/signal_batches.py). How many meet depends on how busy
the seam is (on an idle machine, few do); the order and the single answer must not."""

from __future__ import annotations

from telethon.tl import types
from temporalio.api.enums.v1 import EventType
from temporalio.converter import DataConverter

from tests.channels.telegram.harness import ALICE, TelegramHarness, private
from workflows.payloads import MessageReceived, MessagesReceived

TYPING = types.SendMessageTypingAction()


async def signalled_message_ids(tg: TelegramHarness, chat_id: int) -> list[list[int]]:
    """Per message signal the conversation got, the message ids it carried, in order."""
    workflow_id = tg.workflow_id(chat_id)
    history = await tg.env.client.get_workflow_handle(workflow_id).fetch_history()
    convert = DataConverter.default.payload_converter
    carried = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        signal = event.workflow_execution_signaled_event_attributes
        payloads = list(signal.input.payloads)
        if signal.signal_name == "message_received":
            (one,) = convert.from_payloads(payloads, [MessageReceived])
            carried.append([one.message_id])
        elif signal.signal_name == "messages_received":
            (batch,) = convert.from_payloads(payloads, [MessagesReceived])
            carried.append([m.message_id for m in batch.messages])
    return carried


async def test_a_fast_burst_keeps_its_order_and_gets_one_reply(tg: TelegramHarness) -> None:
    texts = [f"part {n}" for n in range(1, 9)]
    async with tg.worker():
        listener = await tg.start_listener()
        sent_ids = []
        for text in texts:  # no pause: the updates reach the listener together
            tg.world.typing(ALICE, private(), TYPING)
            sent_ids.append(tg.world.send(ALICE, private(), text))
        replies = await tg.wait_for_replies(ALICE, 1)
        await tg.replies_match_bursts(ALICE)  # and no second reply, however late
        assert [r.text for r in tg.replies_to(ALICE)] == [
            f"[echo: {len(texts)} messages] " + " ".join(texts)
        ]
        assert len(replies) == 1
        carried = await signalled_message_ids(tg, ALICE)
        assert await tg.stop_listener(listener) == 0
    # Every message signalled exactly once, in the order the user sent them.
    assert [m for batch in carried for m in batch] == sent_ids
    rows = await tg.messages()
    assert [r.text for r in rows] == texts
