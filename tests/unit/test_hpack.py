"""HPACK (RFC 7541) decoding: every example of Appendix C, the Huffman code of Appendix B,
and malformed blocks, each refused with HpackError (never another exception).

The example bytes are the RFC's hex dumps, copied by script from the RFC 7541 text quoted
in github.com/zellerin/http2 (tests-hpack.lisp, commit 08a1ada), and equal to the hex
strings of that repository's current tests and to python-hyper/hpack's for C.3 and C.4."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtmesh_sidecar.hpack import (
    STATIC_TABLE,
    HeaderDecoder,
    HpackError,
    encode_literal,
    huffman_decode,
)
from jwtmesh_sidecar.hpack_huffman import EOS, HUFFMAN_CODES

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Fields = list[tuple[bytes, bytes]]


# --- Reference encoders, written from the tables, for building inputs ------------------


def pack(codes: list[tuple[int, int]], padding: int | None = None) -> bytes:
    """(code, bit length) pairs end to end, padded to an octet with ones or `padding`."""
    acc = bits = 0
    for code, length in codes:
        acc, bits = acc << length | code, bits + length
    pad = -bits % 8
    acc = acc << pad | ((1 << pad) - 1 if padding is None else padding)
    return acc.to_bytes((bits + pad) // 8, "big")


def huffman_encode(data: bytes, *, padding: int | None = None) -> bytes:
    """`data` Huffman coded (§5.2): the reference encoder of these tests."""
    return pack([HUFFMAN_CODES[octet] for octet in data], padding)


def integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """A prefix integer (§5.1), `flags` in the first octet's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def string(data: bytes, *, huffman: bool = False) -> bytes:
    if huffman:
        coded = huffman_encode(data)
        return integer(len(coded), 7, 0x80) + coded
    return integer(len(data), 7) + data


def size(fields: Fields) -> int:
    return sum(len(name) + len(value) + 32 for name, value in fields)


# --- RFC 7541 Appendix C ----------------------------------------------------------------

# The hex dumps of C.3 to C.6 as printed. C.4 codes C.3's header lists with Huffman, C.6
# codes C.5's: each pair shares its decoded lists and dynamic tables (newest first).
C3_1 = "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"
C3_2 = "8286 84be 5808 6e6f 2d63 6163 6865"
C3_3 = "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"
C4_1 = "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"
C4_2 = "8286 84be 5886 a8eb 1064 9cbf"
C4_3 = "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
C5_1 = (
    "4803 3330 3258 0770 7269 7661 7465 611d "
    "4d6f 6e2c 2032 3120 4f63 7420 3230 3133 "
    "2032 303a 3133 3a32 3120 474d 546e 1768 "
    "7474 7073 3a2f 2f77 7777 2e65 7861 6d70 "
    "6c65 2e63 6f6d"
)
C5_2 = "4803 3330 37c1 c0bf"
C5_3 = (
    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 "
    "3230 3133 2032 303a 3133 3a32 3220 474d "
    "54c0 5a04 677a 6970 7738 666f 6f3d 4153 "
    "444a 4b48 514b 425a 584f 5157 454f 5049 "
    "5541 5851 5745 4f49 553b 206d 6178 2d61 "
    "6765 3d33 3630 303b 2076 6572 7369 6f6e "
    "3d31"
)
C6_1 = (
    "4882 6402 5885 aec3 771a 4b61 96d0 7abe "
    "9410 54d4 44a8 2005 9504 0b81 66e0 82a6 "
    "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 "
    "e9ae 82ae 43d3"
)
C6_2 = "4883 640e ffc1 c0bf"
C6_3 = (
    "88c1 6196 d07a be94 1054 d444 a820 0595 "
    "040b 8166 e084 a62d 1bff c05a 839b d9ab "
    "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b "
    "3960 d5af 2708 7f36 72c1 ab27 0fb5 291f "
    "9587 3160 65c0 03ed 4ee5 b106 3d50 07"
)

REQUEST_1 = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/"),
    (b":authority", b"www.example.com"),
]
REQUEST_2 = [*REQUEST_1, (b"cache-control", b"no-cache")]
REQUEST_3 = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/index.html"),
    (b":authority", b"www.example.com"),
    (b"custom-key", b"custom-value"),
]
REQUEST_TABLES = [
    [(b":authority", b"www.example.com")],
    [(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")],
    [
        (b"custom-key", b"custom-value"),
        (b"cache-control", b"no-cache"),
        (b":authority", b"www.example.com"),
    ],
]
REQUESTS = list(zip([REQUEST_1, REQUEST_2, REQUEST_3], REQUEST_TABLES, [57, 110, 164], strict=True))

DATE_21 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE_22 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESPONSE_1 = [
    (b":status", b"302"),
    (b"cache-control", b"private"),
    (b"date", DATE_21),
    (b"location", LOCATION),
]
RESPONSE_2 = [(b":status", b"307"), *RESPONSE_1[1:]]
RESPONSE_3 = [
    (b":status", b"200"),
    (b"cache-control", b"private"),
    (b"date", DATE_22),
    (b"location", LOCATION),
    (b"content-encoding", b"gzip"),
    (b"set-cookie", COOKIE),
]
RESPONSE_TABLES = [
    [
        (b"location", LOCATION),
        (b"date", DATE_21),
        (b"cache-control", b"private"),
        (b":status", b"302"),
    ],
    [
        (b":status", b"307"),
        (b"location", LOCATION),
        (b"date", DATE_21),
        (b"cache-control", b"private"),
    ],
    [(b"set-cookie", COOKIE), (b"content-encoding", b"gzip"), (b"date", DATE_22)],
]
RESPONSES = list(
    zip([RESPONSE_1, RESPONSE_2, RESPONSE_3], RESPONSE_TABLES, [222, 222, 215], strict=True)
)


@pytest.mark.parametrize(
    ("hex_dump", "fields", "table"),
    [
        pytest.param(
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            [(b"custom-key", b"custom-header")],
            [(b"custom-key", b"custom-header")],
            id="C.2.1-literal-with-indexing",
        ),
        pytest.param(
            "040c 2f73 616d 706c 652f 7061 7468",
            [(b":path", b"/sample/path")],
            [],
            id="C.2.2-literal-without-indexing",
        ),
        pytest.param(
            "1008 7061 7373 776f 7264 0673 6563 7265 74",
            [(b"password", b"secret")],
            [],
            id="C.2.3-literal-never-indexed",
        ),
        pytest.param("82", [(b":method", b"GET")], [], id="C.2.4-indexed"),
    ],
)
def test_c2_field_representations(hex_dump: str, fields: Fields, table: Fields) -> None:
    decoder = HeaderDecoder()
    assert decoder.decode(bytes.fromhex(hex_dump)) == fields
    assert decoder.table == table
    assert decoder.table_size == size(table)


@pytest.mark.parametrize(
    ("table_size", "dumps", "examples"),
    [
        pytest.param(4096, [C3_1, C3_2, C3_3], REQUESTS, id="C.3-requests"),
        pytest.param(4096, [C4_1, C4_2, C4_3], REQUESTS, id="C.4-requests-huffman"),
        pytest.param(256, [C5_1, C5_2, C5_3], RESPONSES, id="C.5-responses-evictions"),
        pytest.param(256, [C6_1, C6_2, C6_3], RESPONSES, id="C.6-responses-huffman"),
    ],
)
def test_c3_to_c6_consecutive_blocks_on_one_decoder(
    table_size: int, dumps: list[str], examples: list[tuple[Fields, Fields, int]]
) -> None:
    decoder = HeaderDecoder(max_table_size=table_size)
    for dump, (fields, table, expected_size) in zip(dumps, examples, strict=True):
        assert decoder.decode(bytes.fromhex(dump)) == fields
        assert decoder.table == table
        assert decoder.table_size == expected_size == size(table)


@pytest.mark.parametrize(
    ("coded", "plain"),
    [
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", b"www.example.com"),  # C.4.1
        ("a8eb 1064 9cbf", b"no-cache"),  # C.4.2
        ("25a8 49e9 5ba9 7d7f", b"custom-key"),  # C.4.3
        ("25a8 49e9 5bb8 e8b4 bf", b"custom-value"),  # C.4.3
        ("6402", b"302"),  # C.6.1
        ("aec3 771a 4b", b"private"),  # C.6.1
        ("9bd9 ab", b"gzip"),  # C.6.3
    ],
)
def test_appendix_c_huffman_strings(coded: str, plain: bytes) -> None:
    assert huffman_decode(bytes.fromhex(coded)) == plain
    assert huffman_encode(plain) == bytes.fromhex(coded)


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        (b"\x3f\x9a\x0a", 1337),  # C.1.2: 1337 on a 5-bit prefix (as a size update)
        (b"\x2a", 10),  # C.1.1: 10 on a 5-bit prefix
        (b"\x3f\x00", 31),  # 2^N - 1 takes one more octet, of zero
        (b"\x3f\xe1\x1f", 4096),
    ],
)
def test_c1_prefix_integers(encoded: bytes, value: int) -> None:
    decoder = HeaderDecoder()
    assert decoder.decode(encoded) == []
    assert decoder.table_capacity == value


# --- The tables -------------------------------------------------------------------------


def test_static_table_is_appendix_a() -> None:
    assert len(STATIC_TABLE) == 61
    assert STATIC_TABLE[0] == (b":authority", b"")
    assert STATIC_TABLE[1] == (b":method", b"GET")
    assert STATIC_TABLE[7] == (b":status", b"200")
    assert STATIC_TABLE[15] == (b"accept-encoding", b"gzip, deflate")
    assert STATIC_TABLE[30] == (b"content-type", b"")
    assert STATIC_TABLE[60] == (b"www-authenticate", b"")
    assert [value for _, value in STATIC_TABLE[16:]] == [b""] * 45
    decoder = HeaderDecoder()
    assert decoder.decode(bytes(range(0x81, 0x81 + 61))) == list(STATIC_TABLE)


def test_huffman_table_is_a_complete_canonical_prefix_code() -> None:
    assert len(HUFFMAN_CODES) == 257
    assert HUFFMAN_CODES[EOS] == (0x3FFFFFFF, 30)
    assert all(5 <= length <= 30 and code < 1 << length for code, length in HUFFMAN_CODES)
    assert sum(Fraction(1, 2**length) for _, length in HUFFMAN_CODES) == 1  # Kraft: complete
    # Prefix-free: aligned to 30 bits, the codes' intervals do not overlap.
    intervals = sorted(
        (code << (30 - length), 1 << (30 - length)) for code, length in HUFFMAN_CODES
    )
    assert all(start + width <= after for (start, width), (after, _) in pairwise(intervals))
    # Canonical (as RFC 7541's is): the codes follow from the lengths alone.
    code, previous = -1, 0
    for symbol in sorted(range(257), key=lambda s: (HUFFMAN_CODES[s][1], s)):
        length = HUFFMAN_CODES[symbol][1]
        code = (code + 1) << (length - previous)
        previous = length
        assert HUFFMAN_CODES[symbol][0] == code


# --- Huffman ----------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=300))
def test_huffman_round_trip(data: bytes) -> None:
    assert huffman_decode(huffman_encode(data)) == data


def _huffman_literal(name: bytes, coded: bytes) -> bytes:
    """'Literal without indexing, new name' with a Huffman-coded value (short strings)."""
    assert len(coded) < 0x7F, "one-octet lengths only"
    return b"\x00" + bytes([len(name)]) + name + bytes([0x80 | len(coded)]) + coded


@PROPERTY
@given(st.binary(max_size=28))  # at most 30 bits each, with the 4 octets below: < 127 octets
def test_a_huffman_value_decoded_again_is_the_same_and_a_bad_one_fails_every_time(
    data: bytes,
) -> None:
    """Short Huffman strings are remembered once decoded (Envoy repeats its :path)."""
    block = _huffman_literal(b"x", huffman_encode(data))
    for _ in range(2):
        assert HeaderDecoder().decode(block) == [(b"x", data)]
    broken = _huffman_literal(b"x", huffman_encode(data) + b"\xff" * 4)  # EOS inside
    for _ in range(2):
        with pytest.raises(HpackError):
            HeaderDecoder().decode(broken)


@PROPERTY
@given(st.binary(max_size=64))
def test_huffman_padding_not_all_ones_is_refused(data: bytes) -> None:
    bits = sum(HUFFMAN_CODES[octet][1] for octet in data)
    pad = -bits % 8
    if pad == 0:
        data += b"0"  # 5 bits: 3 of padding
        pad = 3
    # All ones but the last bit: no code is that short, so it is a code cut short.
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(huffman_encode(data, padding=(1 << pad) - 2))


@pytest.mark.parametrize(
    "coded",
    [
        b"\xff",  # 8 bits of padding
        huffman_encode(b"a") + b"\xff",  # 'a' (5 bits), then 11 ones
        huffman_encode(b"aaaaa") + b"\xff",  # 25 bits, then 15 ones
        b"\x00",  # '0' (5 bits), then 3 zeros
        b"\xfe",  # seven ones and a zero: a longer code, cut
    ],
)
def test_huffman_bad_padding(coded: bytes) -> None:
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(coded)


def test_huffman_padding_of_up_to_seven_ones_is_fine() -> None:
    # 'a' and '0' are 5 bits each: 25 bits leave 7 bits of padding, 15 bits leave 1.
    for plain, pad in ((b"aaaaa", 7), (b"a0a", 1), (b"a", 3), (b"", 0)):
        assert -sum(HUFFMAN_CODES[octet][1] for octet in plain) % 8 == pad
        assert huffman_decode(huffman_encode(plain)) == plain


@pytest.mark.parametrize("after", [b"", b"a", b"custom-key"])
@pytest.mark.parametrize("before", [b"", b"a", b"custom-key"])
def test_huffman_eos_inside_is_refused(before: bytes, after: bytes) -> None:
    codes = [HUFFMAN_CODES[octet] for octet in before]
    codes += [HUFFMAN_CODES[EOS]] + [HUFFMAN_CODES[octet] for octet in after]
    with pytest.raises(HpackError, match="EOS"):
        huffman_decode(pack(codes))


# --- The dynamic table ------------------------------------------------------------------


def literal(name: bytes, value: bytes, *, flags: int = 0x40) -> bytes:
    """A literal field with a new name: with incremental indexing unless `flags` says."""
    return bytes([flags]) + string(name) + string(value)


def test_an_entry_larger_than_the_table_empties_it() -> None:
    decoder = HeaderDecoder(max_table_size=64)
    decoder.decode(literal(b"a", b"b"))  # 34
    assert decoder.table == [(b"a", b"b")]
    big = (b"name", b"x" * 40)  # 76 > 64: §4.4, the table is emptied, nothing added
    assert decoder.decode(literal(*big)) == [big]
    assert decoder.table == []
    assert decoder.table_size == 0
    exact = (b"n", b"x" * 31)  # 64: fits exactly
    decoder.decode(literal(*exact))
    assert decoder.table == [exact]
    assert decoder.table_size == 64


def test_a_new_entry_may_name_the_entry_it_evicts() -> None:
    decoder = HeaderDecoder(max_table_size=80)
    decoder.decode(literal(b"custom-key", b"v1"))  # 44
    # Name index 62 (custom-key), a value that needs the room: custom-key: v1 is evicted.
    block = bytes([0x40 | 62]) + string(b"v" * 20)
    assert decoder.decode(block) == [(b"custom-key", b"v" * 20)]
    assert decoder.table == [(b"custom-key", b"v" * 20)]
    assert decoder.table_size == 62


def test_size_updates_evict_and_may_come_in_a_row() -> None:
    decoder = HeaderDecoder()
    decoder.decode(literal(b"a", b"1") + literal(b"b", b"2") + literal(b"c", b"3"))
    assert decoder.table_size == 3 * 34
    assert decoder.decode(integer(70, 5, 0x20)) == []  # room for two: "a" goes
    assert decoder.table == [(b"c", b"3"), (b"b", b"2")]
    assert decoder.table_capacity == 70
    # 0 then back up to the maximum, before the first field: all allowed (§4.2).
    assert decoder.decode(b"\x20" + integer(4096, 5, 0x20) + b"\x82") == [(b":method", b"GET")]
    assert decoder.table == []
    assert decoder.table_capacity == 4096
    decoder.decode(literal(b"d", b"4"))
    assert decoder.table == [(b"d", b"4")]


def test_a_zero_sized_table_keeps_nothing() -> None:
    decoder = HeaderDecoder(max_table_size=0)
    assert decoder.decode(literal(b"a", b"b")) == [(b"a", b"b")]
    assert decoder.table == []
    with pytest.raises(HpackError, match="index 62"):
        decoder.decode(b"\xbe")


def test_the_literal_representations() -> None:
    decoder = HeaderDecoder()
    without = literal(b"x-a", b"1", flags=0x00)
    never = literal(b"x-b", b"2", flags=0x10)
    indexed_name = bytes([0x04]) + string(b"/p")  # :path, without indexing
    never_indexed_name = bytes([0x1F, 0x0D]) + string(b"v", huffman=True)  # index 28
    assert decoder.decode(without + never + indexed_name + never_indexed_name) == [
        (b"x-a", b"1"),
        (b"x-b", b"2"),
        (b":path", b"/p"),
        (b"content-length", b"v"),
    ]
    assert decoder.table == []
    with_name = bytes([0x40 | 31]) + string(b"application/grpc", huffman=True)
    assert decoder.decode(with_name) == [(b"content-type", b"application/grpc")]
    assert decoder.decode(b"\xbe") == [(b"content-type", b"application/grpc")]


def test_long_strings_and_indexes_use_continuation_octets() -> None:
    decoder = HeaderDecoder()
    name, value = b"n" * 200, b"v" * 300  # lengths over 127: two octets each
    assert decoder.decode(literal(name, value)) == [(name, value)]
    for _ in range(70):
        decoder.decode(literal(b"k", b"v"))
    assert decoder.decode(integer(62 + 70, 7, 0x80)) == [(name, value)]  # 132: two octets


# --- Malformed blocks -------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"\x80", "index 0", id="indexed-index-0"),
    pytest.param(b"\xbe", "index 62", id="index-beyond-empty-table"),
    pytest.param(literal(b"a", b"b") + b"\xbf", "index 63", id="index-beyond-table"),
    pytest.param(b"\xff\x80\x80\x01", "index", id="huge-index"),
    pytest.param(bytes([0x40 | 62]) + string(b"v"), "index 62", id="literal-name-index"),
    pytest.param(b"\x0f\x80\x01" + string(b"v"), "index", id="literal-long-name-index"),
    pytest.param(b"\xff", "truncated integer", id="int-no-continuation"),
    pytest.param(b"\xff\x80", "truncated integer", id="int-cut-after-continuation"),
    pytest.param(b"\x3f\xe1", "truncated integer", id="size-update-cut"),
    pytest.param(b"\x40", "truncated string", id="no-name"),
    pytest.param(b"\x04", "truncated string", id="no-value"),
    pytest.param(b"\x40\x0acustom", "truncated string", id="name-cut"),
    pytest.param(b"\x04\x05/pa", "truncated string", id="value-cut"),
    pytest.param(b"\x04\x7f", "truncated integer", id="value-length-cut"),
    pytest.param(b"\x04\x7f\xff\xff\xff\x7f", "truncated string", id="value-length-large"),
    pytest.param(b"\xff" + b"\xff" * 10 + b"\x01", "2\\*\\*32", id="giant-integer"),
    pytest.param(integer(1 << 32, 7, 0x80), "2\\*\\*32", id="integer-2**32"),
    pytest.param(b"\x04\x7f\x80\x80\x80\x80\x80\x00", "too long", id="zero-padded-integer"),
    pytest.param(integer(4097, 5, 0x20), "above 4096", id="size-update-above-max"),
    pytest.param(b"\x82\x20", "after a header field", id="size-update-after-field"),
    pytest.param(b"\x82" + integer(100, 5, 0x20), "after a header field", id="size-update-late"),
    pytest.param(b"\x04\x81\xff", "padding", id="huffman-8-bits-padding"),
    pytest.param(b"\x04\x84\xff\xff\xff\xff", "EOS", id="huffman-eos"),
]


@pytest.mark.parametrize(("block", "message"), MALFORMED)
def test_malformed_blocks_are_refused(block: bytes, message: str) -> None:
    with pytest.raises(HpackError, match=message):
        HeaderDecoder().decode(block)


def test_an_integer_just_below_2_32_is_read_then_refused_as_an_index() -> None:
    with pytest.raises(HpackError, match=f"index {(1 << 32) - 1} out of range"):
        HeaderDecoder().decode(integer((1 << 32) - 1, 7, 0x80))


def test_the_header_list_size_limit() -> None:
    get = (b":method", b"GET")  # 7 + 3 + 32 = 42
    decoder = HeaderDecoder(max_header_list_size=84)
    assert decoder.decode(b"\x82\x82") == [get, get]  # exactly at the limit
    with pytest.raises(HpackError, match="header list above 84"):
        decoder.decode(b"\x82\x82\x82")
    with pytest.raises(HpackError, match="header list above 84"):
        HeaderDecoder(max_header_list_size=84).decode(literal(b"n", b"v" * 60, flags=0))
    # Counted on the decoded strings (RFC 7540 §6.5.2), not their Huffman coding.
    value = b"a" * 40  # 25 octets coded, 40 decoded: 1 + 40 + 32 = 73
    block = b"\x00" + string(b"n") + string(value, huffman=True)
    assert HeaderDecoder(max_header_list_size=73).decode(block) == [(b"n", value)]
    with pytest.raises(HpackError, match="header list above 72"):
        HeaderDecoder(max_header_list_size=72).decode(block)


# --- encode_literal ---------------------------------------------------------------------


def test_encode_literal_bytes() -> None:
    assert encode_literal(b"grpc-status", b"0") == b"\x00\x0bgrpc-status\x010"
    assert encode_literal(b"k", b"v" * 127) == b"\x00\x01k\x7f\x00" + b"v" * 127


@PROPERTY
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_encode_literal_decodes_back(name: bytes, value: bytes) -> None:
    decoder = HeaderDecoder()
    block = encode_literal(name, value) + encode_literal(b"grpc-status", b"0")
    assert decoder.decode(block) == [(name, value), (b"grpc-status", b"0")]
    assert decoder.table == []


# --- Blocks remembered while the table stands still ---------------------------------------


def test_a_repeated_block_follows_the_table_it_indexes() -> None:
    decoder = HeaderDecoder()
    refer = b"\xbe\x82"  # dynamic entry 62 (the newest), then static ":method: GET"
    decoder.decode(literal(b"a", b"1"))
    assert decoder.decode(refer) == [(b"a", b"1"), (b":method", b"GET")]
    assert decoder.decode(refer) == [(b"a", b"1"), (b":method", b"GET")]  # remembered
    decoder.decode(literal(b"b", b"2"))  # entry 62 is now "b: 2"
    assert decoder.decode(refer) == [(b"b", b"2"), (b":method", b"GET")]
    decoder.decode(integer(0, 5, 0x20))  # a size update to 0 empties the table
    with pytest.raises(HpackError):
        decoder.decode(refer)


def test_a_block_that_changes_the_table_is_decoded_every_time() -> None:
    decoder = HeaderDecoder()
    for count in range(1, 4):
        assert decoder.decode(literal(b"a", b"1")) == [(b"a", b"1")]
        assert decoder.table == [(b"a", b"1")] * count


def test_a_remembered_answer_is_a_copy() -> None:
    decoder = HeaderDecoder()
    decoder.decode(b"\x82").append((b"x", b"y"))
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]
    decoder.decode(b"\x82").clear()
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]


_POOL = [
    b"\x82\x86",  # indexed, static only
    b"\xbe",  # the newest dynamic entry
    b"\xbf",  # the one before it
    literal(b"a", b"1"),
    literal(b"b", b"22"),
    literal(b"c", b"3", flags=0x10),  # never indexed: no table change
    integer(40, 5, 0x20),  # a size update: room for one entry
    integer(256, 5, 0x20) + b"\x82",
]


@PROPERTY
@given(st.lists(st.sampled_from(_POOL), max_size=30))
def test_remembering_blocks_changes_no_answer(blocks: list[bytes]) -> None:
    remembering = HeaderDecoder(max_table_size=256)
    reference = HeaderDecoder(max_table_size=256)
    for block in blocks:
        try:
            expected: object = reference._decode(block)  # the path that remembers nothing
        except HpackError as exc:
            expected = str(exc)
        try:
            got: object = remembering.decode(block)
        except HpackError as exc:
            got = str(exc)
        assert got == expected
        assert remembering.table == reference.table
        assert remembering.table_capacity == reference.table_capacity
        if isinstance(expected, str):
            return  # the connection ends here


# --- Any input: decoded, or HpackError ------------------------------------------------


@PROPERTY
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_random_blocks_decode_or_raise_hpack_error(blocks: list[bytes]) -> None:
    decoder = HeaderDecoder(max_table_size=256, max_header_list_size=1024)
    for block in blocks:
        try:
            fields = decoder.decode(block)
        except HpackError:
            return  # the connection ends here
        assert size(fields) <= 1024
        assert decoder.table_size == size(decoder.table) <= decoder.table_capacity <= 256


@PROPERTY
@given(
    st.sampled_from([C3_1 + C3_2 + C3_3, C4_1 + C4_2 + C4_3, C5_3, C6_1, C6_3]),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_rfc_blocks_decode_or_raise_hpack_error(
    dump: str, edits: list[tuple[int, int]]
) -> None:
    block = bytearray(bytes.fromhex(dump))
    for where, octet in edits:
        block[where % len(block)] = octet
    decoder = HeaderDecoder(max_table_size=256)
    try:
        decoder.decode(bytes(block))
    except HpackError:
        return
    assert decoder.table_size == size(decoder.table) <= 256
