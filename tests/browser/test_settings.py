"""Settings (theme, notifications), the running badge on every view, a notification for
a run that ends off screen, and the narrow-screen layout."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .ui import last_reply, new_chat, send

pytestmark = pytest.mark.browser

# Stands in for the browser's notification permission prompt and records what is shown.
FAKE_NOTIFICATIONS = """
window.__notifications = [];
window.Notification = class {
  static permission = localStorage.getItem('test.notify') || 'default';
  static async requestPermission() { localStorage.setItem('test.notify', 'granted'); this.permission = 'granted'; return 'granted'; }
  constructor(title, options) { window.__notifications.push({ title, ...options }); }
  close() {}
};
"""


def test_theme_switch_is_kept(server, logged_in, shoot):
    page = logged_in
    page.get_by_test_id("nav-settings").click()
    page.get_by_test_id("theme-select").get_by_text("Dark").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    shoot(page, "settings-dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.get_by_test_id("nav-chat").click()
    shoot(page, "chat-dark")
    page.get_by_test_id("nav-settings").click()
    page.get_by_test_id("theme-select").get_by_text("Light").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    expect(page.get_by_test_id("current-model")).to_contain_text("offline")
    expect(page.get_by_test_id("tool-list")).to_contain_text("exec")
    shoot(page, "settings", full_page=True)


def test_notification_when_a_run_ends_off_screen(context, server, logged_in):
    page = logged_in
    context.add_init_script(FAKE_NOTIFICATIONS)
    page.reload()
    page.get_by_test_id("nav-settings").click()
    toggle = page.get_by_test_id("notifications-toggle")
    toggle.check()
    expect(page.get_by_test_id("notifications-permission")).to_have_attribute("data-permission", "granted")
    expect(toggle).to_be_checked()

    # On screen: no notification.
    page.get_by_test_id("nav-chat").click()
    new_chat(page)
    send(page, "seen here")
    expect(last_reply(page)).to_have_attribute("data-state", "completed")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__notifications.length") == 0

    # Off screen (on the Tasks view) when it ends: one notification.
    send(page, "/sleep 2")
    expect(last_reply(page)).to_contain_text("tick 1")
    page.get_by_test_id("nav-tasks").click()
    page.wait_for_function("window.__notifications.length > 0", timeout=15_000)
    notes = page.evaluate("window.__notifications")
    assert len(notes) == 1, notes
    assert notes[0]["title"] == "Task finished"


def test_running_badge_on_every_view_and_narrow_layout(browser, server, logged_in, shoot):
    page = logged_in
    page.set_viewport_size({"width": 390, "height": 800})
    expect(page.get_by_test_id("session-sidebar")).not_to_be_in_viewport()
    page.get_by_test_id("sidebar-toggle").click()
    sid = new_chat(page)
    send(page, "/sleep 4")
    expect(last_reply(page)).to_contain_text("tick 1")
    for view in ("nav-chat", "nav-tasks", "nav-settings"):
        page.get_by_test_id(view).click()
        expect(page.get_by_test_id("running-badge")).to_have_text("1")
    page.get_by_test_id("nav-tasks").click()
    expect(page.get_by_test_id("active-task")).to_be_visible()
    shoot(page, "narrow-tasks")
    page.get_by_test_id("nav-chat").click()
    # The chat list is a drawer on a narrow screen.
    expect(page.get_by_test_id("session-sidebar")).not_to_be_in_viewport()
    page.get_by_test_id("sidebar-toggle").click()
    expect(page.get_by_test_id("session-sidebar")).to_be_in_viewport(ratio=1)
    page.wait_for_timeout(300)  # the drawer's slide-in
    shoot(page, "narrow-sidebar")
    page.locator(f'[data-testid="session-item"][data-session-id="{sid}"]').get_by_role("link").click()
    expect(page.get_by_test_id("session-sidebar")).not_to_be_in_viewport()
    expect(last_reply(page)).to_contain_text("Slept 4 s.", timeout=15_000)
    expect(page.get_by_test_id("running-badge")).to_have_text("0", timeout=10_000)
    shoot(page, "narrow-chat")
