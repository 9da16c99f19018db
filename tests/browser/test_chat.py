"""Chat: streamed replies, cancel, reload mid-stream, and the session sidebar."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .ui import count, last_reply, messages, new_chat, record_socket_events, send, wait_until_idle

pytestmark = pytest.mark.browser


def test_send_and_see_a_streamed_reply(context, server, page, logged_in, shoot):
    events = record_socket_events(page)
    page.reload()  # so the recorder sees the socket from its start
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open")
    sid = new_chat(page)
    send(page, "hello **world**")

    reply = last_reply(page)
    expect(reply).to_contain_text('You said: "hello world"', timeout=20_000)
    expect(reply).to_have_attribute("data-streaming", "false")
    wait_until_idle(page)
    expect(messages(page, "user")).to_have_count(1)
    expect(messages(page, "user").first).to_have_text("hello **world**")
    # Markdown is rendered (the quoted **world** becomes bold), not shown raw.
    expect(reply.locator("strong")).to_have_text("world")

    chunks = [e for e in events if e.get("type") == "stream" and e.get("session_id") == sid]
    # Deltas sent close together arrive merged in one frame that covers seq_first..seq.
    deltas = sum(e["seq"] - e.get("seq_first", e["seq"]) + 1 for e in chunks)
    assert deltas >= 2, f"expected the reply in several deltas, got {deltas}"
    end = next(e for e in events if e.get("type") == "stream_end" and e.get("session_id") == sid)
    assert "".join(c["content"] for c in chunks) == end["content"]
    seqs = [e["seq"] for e in events if e.get("session_id") == sid and "seq" in e and e["type"] != "subscribed"]
    assert seqs == sorted(seqs)
    # The sidebar lists the chat, titled by its first message.
    item = page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')
    expect(item.get_by_test_id("session-title")).to_have_text("hello **world**")
    shoot(page, "chat")


def test_cancel_a_running_shell_shows_canceled_and_a_toast(server, logged_in, shoot):
    page = logged_in
    new_chat(page)
    send(page, "/shell echo started; sleep 30")

    cancel = page.get_by_test_id("cancel-button")
    expect(cancel).to_be_visible()
    expect(cancel).to_have_class(re.compile("button--danger"))
    card = last_reply(page).get_by_test_id("tool-card")
    expect(card).to_have_attribute("data-status", "started")
    expect(card.get_by_test_id("tool-output")).to_contain_text("started")  # live output, before the tool ends
    shoot(page, "chat-running-tool")

    began = time.monotonic()
    cancel.click()
    expect(page.get_by_test_id("toast").filter(has_text="Canceled")).to_be_visible()
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", re.compile("canceled|killed"), timeout=15_000)
    expect(reply.get_by_test_id("message-state")).to_contain_text(re.compile("Canceled|Killed"))
    expect(page.get_by_test_id("send-button")).to_be_visible()
    assert time.monotonic() - began < 10
    shoot(page, "chat-canceled")

    # The canceled state is stored: it is still there after a reload.
    page.reload()
    expect(last_reply(page).get_by_test_id("message-state")).to_contain_text(re.compile("Canceled|Killed"))


def test_escape_cancels_the_run(server, logged_in):
    page = logged_in
    new_chat(page)
    send(page, "/sleep 20")
    expect(last_reply(page)).to_contain_text("tick 1")
    page.get_by_test_id("composer-input").press("Escape")
    expect(last_reply(page)).to_have_attribute("data-state", re.compile("canceled|killed"), timeout=15_000)
    expect(page.get_by_test_id("send-button")).to_be_visible()


def test_shift_enter_makes_a_new_line(server, logged_in):
    page = logged_in
    new_chat(page)
    box = page.get_by_test_id("composer-input")
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(messages(page, "user")).to_have_count(0)
    box.press("Enter")
    expect(messages(page, "user").first).to_have_text("first line\nsecond line")
    wait_until_idle(page)


def test_reload_mid_stream_gets_the_rest_without_duplicates(server, logged_in, shoot):
    page = logged_in
    sid = new_chat(page)
    send(page, "/sleep 6")
    reply = last_reply(page)
    expect(reply).to_contain_text("tick 2", timeout=15_000)
    expect(reply).to_have_attribute("data-streaming", "true")

    page.reload()
    expect(page.get_by_test_id("chat-pane")).to_have_attribute("data-session-id", sid)
    reply = last_reply(page)
    # Right after the reload the part streamed so far is back, and the run still goes on.
    expect(reply).to_contain_text("tick 1")
    expect(reply).to_contain_text("Slept 6 s.", timeout=20_000)
    wait_until_idle(page)

    text = reply.inner_text()
    ticks = re.findall(r"tick (\d+)", text)
    assert ticks == [str(i) for i in range(1, len(ticks) + 1)], text
    assert len(ticks) >= 5, text
    assert count(text, r"Slept 6 s\.") == 1, text
    expect(messages(page, "user")).to_have_count(1)
    expect(messages(page, "assistant")).to_have_count(1)
    shoot(page, "chat-after-reload")

    # And once more after it ended: the stored reply is the same text.
    page.reload()
    expect(last_reply(page)).to_contain_text("Slept 6 s.")
    assert last_reply(page).inner_text() == text


def test_failed_and_crashed_replies_say_so(server, logged_in):
    page = logged_in
    new_chat(page)
    send(page, "/fail the model is down")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "failed", timeout=20_000)
    expect(reply.get_by_test_id("message-state")).to_contain_text("the model is down")
    wait_until_idle(page)
    send(page, "/crash")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-state", "failed", timeout=20_000)
    expect(reply.get_by_test_id("message-state")).to_be_visible()
    wait_until_idle(page)

    # After a reload the stored replies still say how they ended, and why.
    page.reload()
    replies = messages(page, "assistant")
    expect(replies).to_have_count(2)
    expect(replies.nth(0).get_by_test_id("message-state")).to_contain_text("the model is down")
    expect(replies.nth(1).get_by_test_id("message-state")).to_contain_text("Failed")


def test_sidebar_rename_archive_restore_delete(server, logged_in, shoot):
    page = logged_in
    sid = new_chat(page)
    send(page, "a chat to organise")
    wait_until_idle(page)
    item = page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')
    expect(item).to_be_visible()

    item.get_by_test_id("session-rename").click()
    field = item.get_by_test_id("rename-input")
    field.fill("Renamed chat")
    field.press("Enter")
    expect(item.get_by_test_id("session-title")).to_have_text("Renamed chat")
    expect(page.get_by_test_id("chat-title")).to_have_text("Renamed chat")
    page.reload()
    expect(page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]').get_by_test_id("session-title")).to_have_text("Renamed chat")

    item = page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')
    item.get_by_test_id("session-archive").click()
    expect(item).to_have_count(0)
    page.get_by_test_id("show-archived").click()
    archived = page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')
    expect(archived).to_be_visible()
    shoot(page, "sidebar-archived")
    archived.get_by_test_id("session-archive").click()  # restore
    expect(archived).to_have_count(0)
    page.get_by_test_id("show-chats").click()
    item = page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')
    expect(item).to_be_visible()

    item.get_by_test_id("session-delete").click()
    page.get_by_test_id("confirm-ok").click()
    expect(item).to_have_count(0)
    page.reload()
    expect(page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]')).to_have_count(0)


def test_closing_the_tab_does_not_stop_the_run(context, server, logged_in):
    page = logged_in
    sid = new_chat(page)
    send(page, "/sleep 3")
    expect(last_reply(page)).to_contain_text("tick 1")
    page.close()

    later = context.new_page()
    later.wait_for_timeout(3500)
    later.goto(f"/#/chat/{sid}")
    reply = last_reply(later)
    expect(reply).to_contain_text("Slept 3 s.", timeout=15_000)
    expect(reply).to_have_attribute("data-state", "completed")
    ticks = re.findall(r"tick (\d+)", reply.inner_text())
    assert ticks == [str(i) for i in range(1, len(ticks) + 1)] and len(ticks) >= 3, ticks
