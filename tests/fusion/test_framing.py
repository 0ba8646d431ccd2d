"""Record framing shared by the alert log and the recording: bytes, torn tails, damage."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from fusion.framing import (
    CRC_AFTER_BODY,
    CRC_BEFORE_BODY,
    SYNC_MARKER,
    SYNCED_CRC_BEFORE_BODY,
    Gap,
    RecordLayout,
)

LAYOUTS = [CRC_BEFORE_BODY, CRC_AFTER_BODY]
BODIES = [b"alpha", b"", b"x" * 300, b"\0\1\2"]


def records(layout: RecordLayout, bodies=BODIES) -> tuple[bytes, list[int]]:
    """A header-less file of ``bodies`` and the offset of each record."""
    chunks, offsets, pos = [], [], 0
    for body in bodies:
        chunks.append(layout.encode(body))
        offsets.append(pos)
        pos += len(chunks[-1])
    return b"".join(chunks), offsets


def read(layout, data, start=0):
    scan = layout.scan(data, start)
    bodies = [data[s.start : s.end] for s in scan]
    return bodies, scan.finished()


def test_golden_bytes_of_both_layouts():
    body = b"xyz"
    assert CRC_BEFORE_BODY.encode(body) == struct.pack("<II", 3, zlib.crc32(body)) + body
    prefix = struct.pack("<I", 3)
    assert CRC_AFTER_BODY.encode(body) == prefix + body + struct.pack(
        "<I", zlib.crc32(prefix + body)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_after_a_header(layout):
    data, offsets = records(layout)
    header = b"HEADER!!"
    bodies, end = read(layout, header + data, start=len(header))
    assert bodies == BODIES
    assert end.clean and end.records == len(BODIES) and end.offset == len(header) + len(data)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_body_in_pieces_is_not_copied_and_equals_the_joined_body(layout):
    payload = bytearray(b"payload")
    pieces = layout.pieces(b"head", payload)
    assert any(p is payload for p in pieces)
    assert b"".join(pieces) == layout.encode(b"headpayload")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_cut_inside_the_last_record_is_a_truncation_at_its_offset(layout):
    data, offsets = records(layout)
    for cut in range(offsets[-1] + 1, len(data)):
        bodies, end = read(layout, data[:cut])
        assert bodies == BODIES[:-1]
        assert end.reason == "truncated" and end.offset == offsets[-1], cut
        assert str(offsets[-1]) in end.detail


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_flipped_bit_stops_the_scan_at_that_record(layout):
    data, offsets = records(layout)
    damaged = bytearray(data)
    damaged[offsets[2] + 8 + 100] ^= 0x10  # inside the third body
    bodies, end = read(layout, bytes(damaged))
    assert bodies == BODIES[:2]
    assert end.reason == "crc" and end.offset == offsets[2] and end.records == 2
    assert f"offset {offsets[2]}" in end.detail


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_impossible_length_is_damage_and_is_never_allocated(layout):
    data, offsets = records(layout)
    damaged = bytearray(data)
    damaged[offsets[1] : offsets[1] + 4] = struct.pack("<I", 0xFFFFFFF0)
    bodies, end = read(layout, bytes(damaged))
    assert bodies == BODIES[:1] and end.reason == "length" and end.offset == offsets[1]
    assert "body_len=4294967280" in end.detail


def test_a_zero_filled_tail_after_an_impossible_length_is_a_truncation():
    layout = RecordLayout(crc_after_body=True, max_body=1 << 20, min_body=10)
    body = b"0123456789abc"
    data = layout.encode(body) + b"\0" * 64
    bodies, end = read(layout, data)
    assert bodies == [body] and end.reason == "truncated" and "zero-filled" in end.detail
    data = layout.encode(body) + b"\0" * 63 + b"\1"  # not all zero: damage
    assert read(layout, data)[1].reason == "length"


def test_bodies_outside_the_limits_cannot_be_written():
    layout = RecordLayout(crc_after_body=False, max_body=8, min_body=2)
    with pytest.raises(ValueError, match="outside"):
        layout.encode(b"x" * 9)
    with pytest.raises(ValueError, match="outside"):
        layout.encode(b"x")


def test_the_end_is_only_known_after_the_whole_scan():
    data, _ = records(CRC_BEFORE_BODY)
    scan = CRC_BEFORE_BODY.scan(data, 0)
    next(iter(scan))
    with pytest.raises(RuntimeError, match="not run to its end"):
        scan.finished()


def test_golden_bytes_of_the_synced_layout():
    body = b"xyz"
    assert SYNCED_CRC_BEFORE_BODY.encode(body) == (
        SYNC_MARKER + struct.pack("<II", 3, zlib.crc32(body)) + body
    )
    assert SYNCED_CRC_BEFORE_BODY.overhead == 16


@pytest.mark.parametrize("layout", [*LAYOUTS, SYNCED_CRC_BEFORE_BODY])
def test_resync_steps_over_a_damaged_record_to_the_next_good_one(layout):
    data, offsets = records(layout)
    damaged = bytearray(data)
    damaged[offsets[2] + layout.header_size + 100] ^= 0x10  # inside the third body
    scan = layout.scan(bytes(damaged), 0, resync=True)
    bodies = [bytes(damaged[s.start : s.end]) for s in scan]
    end = scan.finished()
    assert bodies == BODIES[:2] + BODIES[3:]
    assert end.gaps == (Gap(offsets[2], offsets[3], "crc", end.gaps[0].detail),)
    assert not end.clean and end.reason is None and end.records == 3


@pytest.mark.parametrize("layout", [CRC_BEFORE_BODY, SYNCED_CRC_BEFORE_BODY])
def test_resync_reports_a_torn_tail_as_a_truncated_gap_to_the_end(layout):
    data, offsets = records(layout)
    scan = layout.scan(data[:-3], 0, resync=True)
    assert len(list(scan)) == len(BODIES) - 1
    end = scan.finished()
    assert end.reason == "truncated" and end.offset == offsets[-1]
    assert end.gaps[-1].end == len(data) - 3


def test_resync_finds_records_after_garbage_inserted_between_them():
    layout = SYNCED_CRC_BEFORE_BODY
    data, offsets = records(layout)
    rng = np.random.default_rng(3)
    junk = bytes(rng.integers(0, 256, 500, dtype=np.uint8))
    spliced = data[: offsets[1]] + junk + data[offsets[1] :]
    scan = layout.scan(spliced, 0, resync=True)
    assert [bytes(spliced[s.start : s.end]) for s in scan] == BODIES
    assert scan.finished().gaps[0][:2] == (offsets[1], offsets[1] + 500)
