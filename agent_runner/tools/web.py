"""`web_fetch`: fetch an http(s) URL and return its text; HTML is turned into readable text."""

from __future__ import annotations

import asyncio
import codecs
import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

from .base import ToolContext, ToolError

FETCH_TIMEOUT_S = 20.0
FETCH_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_CHARS = 20_000
MAX_CHARS_LIMIT = 100_000
MAX_REDIRECTS = 5
USER_AGENT = "Mozilla/5.0 (compatible; KakoClaw web_fetch)"

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_TEXT_TYPES = (
    "application/json", "application/xml", "application/javascript", "application/x-javascript",
    "application/ecmascript", "application/rss+xml", "application/atom+xml", "application/x-yaml",
    "application/yaml", "application/toml", "application/x-sh", "application/sql",
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class WebFetchTool:
    name = "web_fetch"
    description = (
        "Fetch a web page or text document over http(s) and return its content as readable text "
        "(HTML is converted to text, links kept as [text](url)). Binary content is refused."
    )
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "an absolute http:// or https:// URL"},
            "max_chars": {
                "type": "integer",
                "minimum": 100,
                "maximum": MAX_CHARS_LIMIT,
                "description": f"most characters of text to return (default {DEFAULT_MAX_CHARS})",
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S, max_bytes: int = FETCH_MAX_BYTES) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes

    async def run(self, args: dict, ctx: ToolContext) -> str:
        import httpx  # here, not at the top: it would add ~60 ms to every runner's start

        url = _check_url(args.get("url"))
        max_chars = _max_chars(args.get("max_chars", args.get("maxChars")))
        timeout = httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s))
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
        }
        try:
            async with httpx.AsyncClient(
                timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS, headers=headers
            ) as client:
                async with asyncio.timeout(self.timeout_s):
                    async with client.stream("GET", url) as resp:
                        body, complete = await _read_capped(resp, self.max_bytes)
        except TimeoutError:
            raise ToolError(f"timed out after {self.timeout_s:g} s fetching {url}") from None
        except httpx.TimeoutException:
            raise ToolError(f"timed out after {self.timeout_s:g} s fetching {url}") from None
        except httpx.TooManyRedirects:
            raise ToolError(f"{url} redirected more than {MAX_REDIRECTS} times") from None
        except httpx.UnsupportedProtocol as exc:
            raise ToolError(f"{url} redirected to a URL that is not http(s): {exc}") from None
        except httpx.ConnectError as exc:
            raise ToolError(f"could not connect to {urlsplit(url).netloc}: {_reason(exc)}") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"fetching {url} failed: {_reason(exc)}") from None

        final_url = str(resp.url)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        kind = _kind(ctype, body)
        if kind == "binary":
            raise ToolError(
                f"{final_url} is {ctype or 'binary content'} ({len(body)}{'+' if not complete else ''} bytes); "
                "web_fetch returns text and HTML only"
            )
        text = body.decode(_charset(resp, body, kind), "replace")
        title = ""
        if kind == "html":
            title, text = html_to_text(text, final_url)
        else:
            text = text.strip()
        if resp.status_code >= 400:
            excerpt = " ".join(text.split())[:300]
            raise ToolError(
                f"HTTP {resp.status_code} {resp.reason_phrase} from {final_url}" + (f": {excerpt}" if excerpt else "")
            )
        header = [f"URL: {final_url}", f"Status: {resp.status_code} {resp.reason_phrase}".rstrip()]
        if ctype:
            header.append(f"Content-Type: {ctype}")
        if title:
            header.append(f"Title: {title}")
        notes = []
        if not complete:
            notes.append(f"[the document is larger than {self.max_bytes} bytes; only its start was read]")
        if len(text) > max_chars:
            notes.append(
                f"[text truncated: showing {max_chars} of {len(text)} characters; "
                f"max_chars can be raised up to {MAX_CHARS_LIMIT}]"
            )
            text = text[:max_chars]
        return "\n".join(header) + "\n\n" + (text or "[no text content]") + ("\n\n" + "\n".join(notes) if notes else "")


def _check_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ToolError("'url' must be a non-empty string (an http:// or https:// URL)")
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ToolError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ToolError(f"web_fetch fetches http:// and https:// URLs only, not {parts.scheme or 'scheme-less'} ones: {url!r}")
    if not parts.hostname:
        raise ToolError(f"invalid URL {url!r}: no host")
    return url


def _max_chars(value: object) -> int:
    if value is None:
        return DEFAULT_MAX_CHARS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise ToolError(f"'max_chars' must be a positive integer (at most {MAX_CHARS_LIMIT})")
    return min(int(value), MAX_CHARS_LIMIT)


async def _read_capped(resp: httpx.Response, limit: int) -> tuple[bytes, bool]:
    buf = bytearray()
    async for chunk in resp.aiter_bytes():
        buf.extend(chunk)
        if len(buf) > limit:
            return bytes(buf[:limit]), False
    return bytes(buf), True


def _reason(exc: BaseException) -> str:
    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return str(exc) or type(exc).__name__


def _kind(ctype: str, body: bytes) -> str:
    if ctype in _HTML_TYPES:
        return "html"
    if ctype.startswith("text/") or ctype in _TEXT_TYPES or ctype.endswith(("+json", "+xml")):
        return "text"
    if ctype and ctype not in ("application/octet-stream", "binary/octet-stream"):
        return "binary"
    head = body[:1024]
    if b"\x00" in head:
        return "binary"
    if re.search(rb"<(!doctype html|html|head|body)\b", head, re.I):
        return "html"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sample's end
            return "binary"
    return "text"


def _charset(resp: httpx.Response, body: bytes, kind: str) -> str:
    candidates = [resp.charset_encoding]
    if kind == "html" and (m := _META_CHARSET.search(body[:4096])):
        candidates.append(m.group(1).decode("ascii", "replace"))
    for name in candidates:
        if name:
            try:
                return codecs.lookup(name).name
            except LookupError:
                continue
    return "utf-8"


_SKIP = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "select"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "header", "main", "nav", "ol", "p", "section", "table", "tbody",
    "thead", "tfoot", "tr", "ul", "details", "summary", "caption",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _TextExtractor(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.out: list[str] = []
        self.title: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.in_title = False
        self.links: list[tuple[str | None, int]] = []  # (href, position in out where link text starts)

    # -- helpers
    def _tail(self) -> str:
        for part in reversed(self.out):
            if part:
                return part[-1]
        return "\n"

    def _newlines(self, count: int = 1) -> None:
        """End the current line and leave `count`-1 blank lines, without piling them up."""
        if not self.out:
            return
        tail = "".join(self.out[-8:]).rstrip(" ")
        have = len(tail) - len(tail.rstrip("\n"))
        if have < count:
            self.out.append("\n" * (count - have))

    def _text(self, text: str) -> None:
        if self.pre_depth:
            self.out.append(text)
            return
        text = re.sub(r"\s+", " ", text)
        if self._tail() in ("\n", " "):
            text = text.lstrip(" ")
        if text:
            self.out.append(text)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "title":
            self.in_title = True
        elif tag in _HEADINGS:
            self._newlines(2)
            self.out.append("#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self._newlines(1)
            self.out.append("- ")
        elif tag in ("td", "th"):
            if self._tail() not in ("\n",):
                self.out.append(" | ")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self._newlines(1)
            self.out.append("---\n")
        elif tag == "pre":
            self._newlines(2)
            self.pre_depth += 1
        elif tag == "p" or tag == "blockquote":
            self._newlines(2)
        elif tag in _BLOCK:
            self._newlines(1)
        elif tag == "a":
            href = dict(attrs).get("href")
            self.links.append((href, len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            return
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == "title":
            self.in_title = False
        elif tag in _HEADINGS or tag in ("p", "blockquote"):
            self._newlines(2)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
            self._newlines(2)
        elif tag in _BLOCK or tag == "li":
            self._newlines(1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            target = _link_target(self.base_url, href)
            if label and target and target != label:
                del self.out[start:]
                self.out.append(f"[{label}]({target})")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_title:
            self.title.append(data)
            return
        self._text(data)


def _link_target(base_url: str, href: str | None) -> str | None:
    if not href:
        return None
    href = href.strip()
    if href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return None
    try:
        target = urljoin(base_url, href)
    except ValueError:
        return None
    return target if urlsplit(target).scheme in ("http", "https") else None


def html_to_text(html: str, base_url: str = "") -> tuple[str, str]:
    """(title, readable text) of an HTML document: scripts and styles dropped, blocks on their
    own lines, headings marked with #, list items with -, links as [text](url)."""
    parser = _TextExtractor(base_url)
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; keep whatever was extracted if it ever gives up
        pass
    text = "".join(parser.out)
    lines = [line.rstrip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(parser.title).split())
    return title, text
