"""The merged feed: deterministic to the byte, in delivery order, no sequence gaps."""

from __future__ import annotations

from collections import defaultdict

from fusion.messages import decode_batch, encode_batch
from sensors.feed import generate_feed, iter_messages
from sensors.scenario import Scenario
from sensors.truth import decode_truth, simulate_truth


def _bytes(feed):
    return [(t, b.topic, encode_batch(b)) for t, b in feed]


def test_same_file_and_seed_give_the_same_bytes(small_text):
    a = _bytes(generate_feed(Scenario.loads(small_text)))
    b = _bytes(generate_feed(Scenario.loads(small_text)))
    assert a == b
    c = _bytes(generate_feed(Scenario.loads(small_text.replace("seed = 11", "seed = 12"))))
    assert a != c


def test_adding_a_sensor_leaves_the_others_alone(small_text):
    extra = small_text + """
[[sensors]]
id = "radar-2"
kind = "radar"
position = [0.0, 3000.0]
range = [50.0, 5000.0]
rate = 2.0
pd = 0.8
sigma_range = 5.0
sigma_bearing = 0.1
"""
    a = [x for x in _bytes(generate_feed(Scenario.loads(small_text)))]
    b = [x for x in _bytes(generate_feed(Scenario.loads(extra))) if b"radar-2" not in x[1]]
    assert a == b


def test_feed_is_in_delivery_order_with_per_sensor_sequences(small):
    feed = generate_feed(small)
    times = [t for t, _ in feed]
    assert times == sorted(times)
    seqs = defaultdict(list)
    for t, batch in feed:
        assert t >= batch.t
        seqs[batch.sensor_id].append(batch.seq)
        assert batch.coverage is not None and batch.coverage.shape[1] == 2
    assert set(seqs) == {s.id for s in small.sensors}
    for sid, s in seqs.items():
        assert s == list(range(len(s))), sid
    # Empty frames are still sent, so a gap in the sequence can only mean loss.
    assert any(len(b) == 0 for _, b in feed)
    assert len(seqs["radar-1"]) == 61 and len(seqs["uav-1"]) == 241


def test_satellite_arrives_late_and_out_of_time_order(small):
    feed = generate_feed(small)
    sat = [(t, b) for t, b in feed if b.sensor_kind == "satellite"]
    assert all(12.0 <= t - b.t <= 14.0 for t, b in sat)
    newest = float("-inf")
    overtaken = 0
    for _, b in feed:
        overtaken += b.t < newest - 5.0
        newest = max(newest, b.t)
    assert overtaken >= len(sat) - 1


def test_messages_decode_and_interleave_truth(small):
    truth = simulate_truth(small)
    msgs = list(iter_messages(small, truth, include_truth=True))
    topics = [topic for _, topic, _ in msgs]
    assert topics.count(b"truth.small") == len(truth)
    for t, topic, payload in msgs:
        if topic.startswith(b"truth."):
            assert decode_truth(payload)[0] == t
        else:
            assert decode_batch(payload).topic == topic
    assert [t for t, _, _ in msgs] == sorted(t for t, _, _ in msgs)
