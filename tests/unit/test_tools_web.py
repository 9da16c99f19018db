"""web_fetch against a real web server on loopback, and the HTML-to-text conversion."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runner.protocol import Limits
from agent_runner.tools import ToolContext, ToolError
from agent_runner.tools.web import MAX_CHARS_LIMIT, WebFetchTool, html_to_text
from tests.fakes.server import free_port
from tests.fakes.web_server import FakeWeb, Page

ARTICLE = b"""<!doctype html><html><head><title>The  Garden &amp; You</title>
<style>body { color: red }</style><script>alert("no")</script></head>
<body><nav><a href="/">Home</a></nav>
<h1>Growing tomatoes</h1>
<p>Tomatoes need <b>sun</b> and <a href="/water">regular water</a>.</p>
<ul><li>Plant in May</li><li>Stake early</li></ul>
<noscript>enable js</noscript>
<pre>  indented
    code</pre>
</body></html>"""


@pytest.fixture
def web():
    routes = {
        "/article": Page(ARTICLE),
        "/plain": Page(b"just text\nline two\n", content_type="text/plain"),
        "/data.json": Page(b'{"answer": 42}', content_type="application/json"),
        "/latin1": Page("caf\xe9 cr\xe8me".encode("latin-1"), content_type="text/plain; charset=iso-8859-1"),
        "/meta-charset": Page('<html><head><meta charset="windows-1252"></head><body>na\xefve</body></html>'.encode("cp1252"),
                              content_type="text/html"),
        "/image.png": Page(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", content_type="image/png"),
        "/octets": Page(b"\x00\x01\x02\x03" * 100, content_type=None),
        "/huge": Page(b"<p>" + b"word " * 500_000 + b"</p>", content_type="text/html"),
        "/missing": Page(b"<h1>Gone fishing</h1>", status=404),
        "/boom": Page(b"internal trouble", status=500, content_type="text/plain"),
        "/redirect": Page(status=302, headers={"Location": "/plain"}, content_type=None),
        "/loop": Page(status=302, headers={"Location": "/loop"}, content_type=None),
        "/to-ftp": Page(status=302, headers={"Location": "ftp://example.com/file"}, content_type=None),
        "/slow": Page(b"late", content_type="text/plain", delay_s=5.0),
    }
    with FakeWeb(routes) as server:
        yield server


def fetch(args: dict, tool: WebFetchTool | None = None) -> str:
    ctx = ToolContext(workspace=".", limits=Limits(), call_id="c1", on_output=lambda s, d: None)  # type: ignore[arg-type]
    return asyncio.run((tool or WebFetchTool()).run(args, ctx))


def fails(args: dict, tool: WebFetchTool | None = None) -> str:
    with pytest.raises(ToolError) as info:
        fetch(args, tool)
    return str(info.value)


def test_html_page_becomes_readable_text(web):
    out = fetch({"url": web.url("/article")})
    head, _, body = out.partition("\n\n")
    assert f"URL: {web.url('/article')}" in head and "Status: 200 OK" in head
    assert "Content-Type: text/html" in head and "Title: The Garden & You" in head
    assert "# Growing tomatoes" in body
    assert f"Tomatoes need sun and [regular water]({web.url('/water')})." in body
    assert "- Plant in May\n- Stake early" in body
    assert "  indented\n    code" in body
    for hidden in ("alert", "color: red", "enable js"):
        assert hidden not in out


def test_text_and_json_are_returned_as_is(web):
    assert fetch({"url": web.url("/plain")}).endswith("\n\njust text\nline two")
    assert fetch({"url": web.url("/data.json")}).endswith('\n\n{"answer": 42}')


def test_charsets_from_header_and_meta(web):
    assert fetch({"url": web.url("/latin1")}).endswith("café crème")
    assert fetch({"url": web.url("/meta-charset")}).endswith("naïve")


def test_redirects_are_followed(web):
    out = fetch({"url": web.url("/redirect")})
    assert f"URL: {web.url('/plain')}" in out and out.endswith("just text\nline two")


def test_binary_content_is_refused(web):
    assert "image/png" in fails({"url": web.url("/image.png")}) and "text and HTML only" in fails({"url": web.url("/image.png")})
    assert "text and HTML only" in fails({"url": web.url("/octets")})


def test_size_limits(web):
    out = fetch({"url": web.url("/huge"), "max_chars": 500})
    assert "showing 500 of" in out and "larger than" in out
    body = out.split("\n\n", 1)[1]
    assert len(body) < 1000
    out = fetch({"url": web.url("/huge")}, WebFetchTool(max_bytes=10_000))
    assert "larger than 10000 bytes" in out
    assert fetch({"url": web.url("/plain"), "max_chars": MAX_CHARS_LIMIT * 10}).endswith("line two")


def test_http_errors_are_tool_errors(web):
    message = fails({"url": web.url("/missing")})
    assert message.startswith("HTTP 404 Not Found from") and "Gone fishing" in message
    assert "HTTP 500" in fails({"url": web.url("/boom")})
    assert "redirected more than" in fails({"url": web.url("/loop")})
    assert "not http(s)" in fails({"url": web.url("/to-ftp")})


def test_only_http_and_https(web):
    for url in ("file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "example.com/page"):
        assert "http:// and https:// URLs only" in fails({"url": url})
    assert "no host" in fails({"url": "http:///path"})
    assert "non-empty" in fails({})
    assert "max_chars" in fails({"url": web.url("/plain"), "max_chars": "lots"})


def test_timeout(web):
    start = time.monotonic()
    message = fails({"url": web.url("/slow")}, WebFetchTool(timeout_s=0.5))
    assert "timed out after 0.5 s" in message
    assert time.monotonic() - start < 4


def test_connection_refused():
    port = free_port()
    assert "connection refused" in fails({"url": f"http://127.0.0.1:{port}/"})


def test_html_to_text_edge_cases():
    title, text = html_to_text("<p>a<br>b</p><table><tr><th>k</th><th>v</th></tr><tr><td>1</td><td>2</td></tr></table>")
    assert title == "" and text == "a\nb\n\nk | v\n1 | 2"
    _, text = html_to_text('<p>see <a href="#x">here</a> and <a href="javascript:void(0)">there</a></p>')
    assert text == "see here and there"
    _, text = html_to_text("<div>unclosed <p>tags <span>everywhere")
    assert text == "unclosed\n\ntags everywhere"
    _, text = html_to_text("<p>x &lt; y &amp;&amp; caf&eacute;</p>")
    assert text == "x < y && café"
