"""Sign-in: a clear message on bad credentials and on rate limiting; the token is kept
and respected; signing out; changing the password. These run against their own server,
since they spend the sign-in attempts an address has per minute."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, login_through_form, running_server, wait_connected

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def own_server():
    with running_server() as srv:
        yield srv


@pytest.fixture
def own_page(browser, own_server):
    ctx = browser.new_context(base_url=own_server["url"], viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    yield page
    ctx.close()


def test_bad_credentials_then_sign_in_keeps_the_token(own_page, own_server, shoot):
    page = own_page
    page.goto("/")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("not the password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")
    shoot(page, "login")

    login_through_form(page, own_server)
    wait_connected(page)
    expect(page.get_by_test_id("current-user")).to_have_text("admin")
    expect(page.get_by_test_id("running-badge")).to_have_text("0")

    # The token is kept: a reload stays signed in.
    page.reload()
    expect(page.get_by_test_id("composer-input")).to_be_visible()
    expect(page.get_by_test_id("login-form")).to_have_count(0)

    # An expired token is not used: the app sends you to sign in again, and says why.
    page.evaluate(
        "() => { const a = JSON.parse(localStorage.getItem('kakoclaw.auth')); a.expires_at = Date.now() - 1000;"
        " localStorage.setItem('kakoclaw.auth', JSON.stringify(a)); }"
    )
    page.reload()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("login-notice")).to_contain_text("expired")


def test_sign_out_and_change_password(own_page, own_server):
    page = own_page
    login_through_form(page, own_server)
    page.get_by_test_id("nav-settings").click()
    page.get_by_test_id("old-password").fill(PASSWORD)
    page.get_by_test_id("new-password").fill("a-new-password-1")
    page.get_by_test_id("confirm-password").fill("a-new-password-1")
    page.get_by_test_id("change-password-submit").click()
    expect(page.get_by_test_id("toast").filter(has_text="Password changed")).to_be_visible()
    # Still signed in (with a new token), and the socket came back with it.
    wait_connected(page)
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("a-new-password-1")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("composer-input")).to_be_visible()


def test_rate_limited_sign_in_says_so(own_page):
    page = own_page
    page.goto("/")
    for _ in range(8):
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill("wrong")
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("login-submit")).to_be_enabled()
        if "Too many" in (page.get_by_test_id("login-error").text_content() or ""):
            break
    expect(page.get_by_test_id("login-error")).to_contain_text("Too many sign-in attempts")
