"""The socket comes back by itself: the server goes away and returns on the same port
and data directory; the page shows it is reconnecting, then resumes (here the new server
no longer has the old events, so it answers with a resync and the chat reloads)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import _epoch_ms, running_server, wait_connected
from .ui import last_reply, messages, new_chat, send, wait_until_idle

pytestmark = pytest.mark.browser


def test_reconnects_after_a_server_restart_and_reloads_the_chat(browser, shoot):
    data_dir = Path(tempfile.mkdtemp(prefix="kakoclaw-e2e-", dir="/tmp"))
    os.chmod(data_dir, 0o711)
    with running_server(data_dir=data_dir) as first:
        port = first["port"]
        res = httpx.post(f"{first['url']}/api/v1/auth/login", json={"username": "admin", "password": first["password"]})
        token, expires = res.json()["token"], res.json()["expires_at"]
        ctx = browser.new_context(base_url=first["url"], viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(15_000)
        saved = json.dumps({"token": token, "expires_at": _epoch_ms(expires)})
        ctx.add_init_script(f"window.localStorage.setItem('kakoclaw.auth', {json.dumps(saved)});")
        page = ctx.new_page()
        page.goto("/#/chat")
        wait_connected(page)
        sid = new_chat(page)
        send(page, "before the restart")
        expect(last_reply(page)).to_contain_text('You said: "before the restart"')
        wait_until_idle(page)
        # A long run that the shutdown will interrupt.
        send(page, "/sleep 60")
        expect(last_reply(page)).to_contain_text("tick 1")

        first["proc"].terminate()
        first["proc"].wait(timeout=20)
        status = page.get_by_test_id("connection-status")
        expect(status).to_have_attribute("data-status", re.compile("reconnecting|connecting"))
        expect(status).to_contain_text("Reconnecting")
        shoot(page, "reconnecting")

    try:
        with running_server(port=port, data_dir=data_dir):
            expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "open", timeout=30_000)
            expect(page.get_by_test_id("chat-pane")).to_have_attribute("data-session-id", sid)
            # The history is all there, once; the interrupted run says so.
            expect(messages(page, "user")).to_have_count(2)
            expect(messages(page, "assistant")).to_have_count(2)
            expect(last_reply(page)).to_have_attribute("data-state", re.compile("interrupted|canceled|killed"), timeout=15_000)
            wait_until_idle(page)
            # And the chat goes on.
            send(page, "after the restart")
            expect(last_reply(page)).to_contain_text('You said: "after the restart"', timeout=20_000)
            expect(messages(page, "user")).to_have_count(3)
            expect(messages(page, "assistant")).to_have_count(3)
            assert last_reply(page).inner_text().count("after the restart") == 1
    finally:
        ctx.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        Path(f"{data_dir}.log").unlink(missing_ok=True)
