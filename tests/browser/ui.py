"""Small helpers for driving the app the way a person does."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect


def new_chat(page: Page) -> str:
    """Starts a new chat from the sidebar; returns its session id."""
    before = page.get_by_test_id("chat-pane").get_attribute("data-session-id")
    page.get_by_test_id("new-chat").click()
    pane = page.get_by_test_id("chat-pane")
    expect(pane).not_to_have_attribute("data-session-id", before or "")
    sid = pane.get_attribute("data-session-id")
    assert sid and sid.startswith("web:chat:"), sid
    return sid


def send(page: Page, text: str) -> None:
    box = page.get_by_test_id("composer-input")
    box.fill(text)
    box.press("Enter")


def messages(page: Page, role: str):
    return page.locator(f'[data-testid="message"][data-role="{role}"]')


def last_reply(page: Page):
    return messages(page, "assistant").last


def wait_until_idle(page: Page, timeout: float = 30_000) -> None:
    expect(page.get_by_test_id("send-button")).to_be_visible(timeout=timeout)


def record_socket_events(page: Page) -> list[dict]:
    """Every event the page receives on /ws/chat, decoded (call before the page connects)."""
    events: list[dict] = []

    def on_socket(ws):
        def on_frame(payload):
            try:
                events.append(json.loads(payload))
            except (TypeError, ValueError):
                pass

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return events


def count(text: str, pattern: str) -> int:
    return len(re.findall(pattern, text))
