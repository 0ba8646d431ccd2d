"""Real sockets: a SUB receives every published batch, in sequence; stopping is clean."""

from __future__ import annotations

import argparse
import threading

import numpy as np
import pytest
import zmq

from fusion.messages import decode_batch
from replay.cli import sensors as cli
from sensors.feed import iter_messages
from sensors.publisher import publish
from sensors.truth import Truth, decode_truth, simulate_truth

# Bounds every receive; generous, since the suite must pass with every core busy.
RECV_TIMEOUT_MS = 30_000


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def sub(ctx):
    """A SUB socket bound to a random loopback port; yields (socket, endpoint)."""
    with ctx.socket(zmq.SUB) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        yield sock, f"tcp://127.0.0.1:{port}"


def _receive(sock: zmq.Socket, count: int) -> list[tuple[bytes, bytes]]:
    got = []
    while len(got) < count:
        assert sock.poll(RECV_TIMEOUT_MS), f"timed out after {len(got)} of {count} messages"
        got.append(tuple(sock.recv_multipart()))
    return got


def _thread(target, **kwargs) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", target(**kwargs)))
    thread.start()
    return thread, out


def _then_on_signal(messages, go: threading.Event, last):
    """``messages``, then ``last`` once ``go`` is set (the publisher waits in between,
    its socket and connection as they were)."""
    yield from messages
    if go.wait(RECV_TIMEOUT_MS / 1e3):
        yield last


def test_subscriber_gets_every_batch_without_sequence_gaps(ctx, sub, small):
    sock, endpoint = sub
    sock.subscribe(b"det.")
    truth = simulate_truth(small)
    expected = list(iter_messages(small, truth))
    marker = (0.0, b"det.end", b"marker")
    go = threading.Event()
    thread, out = _thread(
        publish, ctx=ctx, messages=_then_on_signal(expected, go, marker), endpoint=endpoint,
        bind=False, speed=None, wait_subscribers=1, wait_timeout=RECV_TIMEOUT_MS / 1e3,
    )
    try:
        got = _receive(sock, len(expected))
        # Nothing beyond the feed, while the publisher is alive and connected...
        extra = sock.poll(100)
        go.set()
        # ...and the same path still delivers: the quiet above was not a dead socket.
        after = _receive(sock, 1)
    finally:
        go.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not extra
    assert after == [marker[1:]]
    assert out["result"].sent == len(expected) + 1 and out["result"].subscriptions == 1
    assert [(topic, payload) for _, topic, payload in expected] == got
    last: dict[str, int] = {}
    for topic, payload in got:
        batch = decode_batch(payload)
        assert topic == batch.topic
        assert batch.seq == last.get(batch.sensor_id, -1) + 1
        last[batch.sensor_id] = batch.seq
    assert set(last) == {s.id for s in small.sensors}


def test_stop_event_ends_a_paced_run_promptly(ctx, sub, small):
    sock, endpoint = sub
    sock.subscribe(b"")
    stop = threading.Event()
    thread, out = _thread(
        publish, ctx=ctx, messages=iter_messages(small), endpoint=endpoint, bind=False,
        speed=1.0, stop=stop, wait_subscribers=1, wait_timeout=RECV_TIMEOUT_MS / 1e3, linger_ms=0,
    )
    try:
        _receive(sock, 3)  # the first few frames are due within the first second
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert out["result"].stopped


def test_publisher_without_subscribers_gives_up_waiting(ctx, caplog):
    stop = threading.Event()
    with caplog.at_level("WARNING"):
        stats = publish(ctx, iter([]), "tcp://127.0.0.1:*", bind=True, speed=None, stop=stop,
                        wait_subscribers=1, wait_timeout=0.2, linger_ms=0)
    assert stats.subscriptions == 0 and stats.sent == 0
    assert "misses the messages" in caplog.text


def test_cli_publishes_truth_and_writes_truth_file(ctx, sub, small_text, tmp_path):
    sock, endpoint = sub
    sock.subscribe(b"truth.")
    path = tmp_path / "s.toml"
    path.write_text(small_text)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args([
        "sensors", str(path), "--connect", endpoint, "--speed", "max", "--truth",
        "--truth-out", str(tmp_path / "truth.npz"), "--wait-timeout", "30",
    ])
    thread, out = _thread(args.func, args=args)
    try:
        got = _receive(sock, 61)
    finally:
        thread.join(timeout=20)
    assert not thread.is_alive() and out["result"] == 0
    times = [decode_truth(payload)[0] for _, payload in got]
    assert times == [float(t) for t in np.arange(61)]
    saved = Truth.load(tmp_path / "truth.npz")
    assert len(saved) == 61 and len(saved.incursions) == 1


def test_cli_reports_a_bad_scenario(tmp_path, caplog, small_text):
    path = tmp_path / "bad.toml"
    path.write_text(small_text.replace("rate = 1.0\n", "rate = -1.0\n", 1))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["sensors", str(path), "--bind", "tcp://127.0.0.1:*"])
    assert args.func(args) == 2
    assert "sensors[0].rate" in caplog.text
