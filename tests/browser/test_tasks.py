"""Background execution and the Tasks view: live executions with their process tree,
cancel one, force-kill one, cancel all, the history."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from .ui import last_reply, new_chat, send, wait_until_idle

pytestmark = pytest.mark.browser


def active_count(server) -> int:
    res = httpx.get(f"{server['url']}/api/v1/chat/active", headers={"Authorization": f"Bearer {server['token']}"})
    res.raise_for_status()
    return len(res.json())


def history_row(page, sid):
    return page.locator(f'[data-testid="history-row"][data-session-id="{sid}"]').first


def test_run_goes_on_in_the_background_and_shows_in_tasks(server, logged_in, shoot):
    page = logged_in
    sid = new_chat(page)
    send(page, "/sleep 5")
    expect(last_reply(page)).to_contain_text("tick 1")

    page.get_by_test_id("nav-tasks").click()
    task = page.locator(f'[data-testid="active-task"][data-session-id="{sid}"]')
    expect(task).to_be_visible()
    expect(page.get_by_test_id("running-badge")).to_have_attribute("data-count", re.compile("[1-9]"))
    tree = task.get_by_test_id("process-tree")
    expect(tree.get_by_test_id("process").first).to_be_visible()
    expect(tree.get_by_test_id("process-name").first).to_contain_text("python")
    expect(task.get_by_test_id("task-memory")).to_contain_text(re.compile(r"\d"))
    expect(task.get_by_test_id("task-cpu")).to_contain_text("%")
    expect(task.get_by_test_id("task-duration")).to_contain_text(" s")
    shoot(page, "tasks")

    # Back to the chat (by the task's link): the whole reply is there.
    task.get_by_test_id("task-session-link").click()
    expect(page.get_by_test_id("chat-pane")).to_have_attribute("data-session-id", sid)
    reply = last_reply(page)
    expect(reply).to_contain_text("Slept 5 s.", timeout=15_000)
    text = reply.inner_text()
    assert re.findall(r"tick (\d+)", text) == [str(i) for i in range(1, len(re.findall(r"tick (\d+)", text)) + 1)]
    wait_until_idle(page)
    expect(page.get_by_test_id("running-badge")).to_have_attribute("data-count", "0", timeout=10_000)

    # It is in the history, completed, with its duration.
    page.get_by_test_id("nav-tasks").click()
    row = history_row(page, sid)
    expect(row).to_have_attribute("data-state", "completed")


def test_a_tool_process_tree_and_force_kill(server, logged_in, shoot):
    page = logged_in
    sid = new_chat(page)
    # A tool that ignores SIGTERM: only a force kill (SIGKILL) ends it at once.
    send(page, "/shell trap '' TERM; echo stubborn; sleep 60")
    expect(last_reply(page).get_by_test_id("tool-output")).to_contain_text("stubborn")

    page.get_by_test_id("nav-tasks").click()
    task = page.locator(f'[data-testid="active-task"][data-session-id="{sid}"]')
    expect(task.get_by_test_id("process-name").filter(has_text="sleep")).to_be_visible()
    expect(task.get_by_test_id("process")).to_have_count(3)  # runner, sh, sleep
    shoot(page, "tasks-process-tree")

    task.get_by_test_id("task-kill").click()
    expect(page.get_by_test_id("toast").filter(has_text="Canceled")).to_be_visible()
    expect(task).to_have_count(0, timeout=10_000)
    row = history_row(page, sid)
    expect(row).to_have_attribute("data-state", "killed", timeout=10_000)
    expect(row).to_contain_text("SIGKILL")

    task_link = row.get_by_role("link")
    task_link.click()
    expect(last_reply(page)).to_have_attribute("data-state", "killed")


def test_cancel_one_from_tasks(server, logged_in):
    page = logged_in
    sid = new_chat(page)
    send(page, "/shell sleep 30")
    expect(page.get_by_test_id("cancel-button")).to_be_visible()
    page.get_by_test_id("nav-tasks").click()
    task = page.locator(f'[data-testid="active-task"][data-session-id="{sid}"]')
    task.get_by_test_id("task-cancel").click()
    expect(page.get_by_test_id("toast").filter(has_text="Canceled 1")).to_be_visible()
    expect(task).to_have_count(0, timeout=10_000)
    expect(history_row(page, sid)).to_have_attribute("data-state", "canceled")


def test_cancel_all_asks_first_then_stops_everything(server, logged_in, shoot):
    page = logged_in
    sessions = []
    for _ in range(2):
        sessions.append(new_chat(page))
        send(page, "/shell sleep 30")
        expect(page.get_by_test_id("cancel-button")).to_be_visible()

    # Both chats show as running in the sidebar.
    for sid in sessions:
        expect(page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]').get_by_test_id("session-running")).to_be_visible()

    page.get_by_test_id("nav-tasks").click()
    expect(page.get_by_test_id("active-task")).to_have_count(2)
    expect(page.get_by_test_id("running-badge")).to_have_text("2")

    # Keep: nothing happens.
    page.get_by_test_id("cancel-all").click()
    expect(page.get_by_test_id("confirm-dialog")).to_be_visible()
    shoot(page, "tasks-cancel-all-confirm")
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("confirm-dialog")).to_have_count(0)
    assert active_count(server) == 2

    page.get_by_test_id("cancel-all").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("toast").filter(has_text="Canceled 2")).to_be_visible()
    expect(page.get_by_test_id("active-task")).to_have_count(0, timeout=10_000)
    expect(page.get_by_test_id("no-active")).to_be_visible()
    expect(page.get_by_test_id("running-badge")).to_have_text("0")
    assert active_count(server) == 0
    for sid in sessions:
        expect(history_row(page, sid)).to_have_attribute("data-state", "canceled")
    shoot(page, "tasks-history")

    page.get_by_test_id("nav-chat").click()
    page.locator(f'[data-testid="session-item"][data-session-id="{sessions[0]}"]').get_by_role("link").click()
    expect(last_reply(page)).to_have_attribute("data-state", "canceled")
    wait_until_idle(page)
