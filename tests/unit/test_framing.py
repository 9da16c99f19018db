from supervisor.engine.framing import LineFramer


def feed_all(framer, *chunks):
    out = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    out.extend(framer.finish())
    return out


def test_lines_split_across_chunks_are_joined():
    events = feed_all(LineFramer(), b'{"type":"delta","te', b'xt":"a"}\n{"type":"message",', b'"content":"b"}')
    assert events == [{"type": "delta", "text": "a"}, {"type": "message", "content": "b"}]


def test_over_long_line_is_dropped_whole_and_reported_once():
    framer = LineFramer(line_limit=50)
    long_line = b'{"type":"delta","text":"' + b"A" * 200 + b'"}\n'
    events = feed_all(framer, long_line[:30], long_line[30:120], long_line[120:], b'{"type":"delta","text":"ok"}\n')
    assert [e["type"] for e in events] == ["error", "delta"]
    assert "longer than 50 bytes" in events[0]["message"]
    assert events[1]["text"] == "ok"  # no tail fragment of the long line leaked through


def test_bad_lines_become_error_events_and_the_stream_goes_on():
    events = feed_all(
        LineFramer(),
        b"plain text\n\xff\xfe\n[1]\n{\"type\":\"nope\"}\n{\"type\":\"delta\",\"text\":5}\n\n{\"type\":\"delta\",\"text\":\"x\"}\n",
    )
    kinds = [e["type"] for e in events]
    assert kinds == ["error"] * 5 + ["delta"]
    reasons = " ".join(e["message"] for e in events[:5])
    for expected in ("not JSON", "not UTF-8", "JSON list", "unknown event type", "wrong type"):
        assert expected in reasons
