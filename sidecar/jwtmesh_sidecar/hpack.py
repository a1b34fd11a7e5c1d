"""HPACK (RFC 7541): the header-block decoder of the sidecar's own HTTP/2 server.

Why it exists: the sidecar answers Envoy's gRPC ext_authz calls on its own small HTTP/2
server on asyncio (grpc_h2.py), because grpcio's threads cost ~200 µs per call at a steady
rate. That server needs HPACK, and no dependency is added for it: this module decodes the
header blocks Envoy sends, and `encode_literal` writes the server's few fixed answers.

What it covers: the static table (Appendix A), the dynamic table with its evictions (§4),
prefix integers (§5.1), string literals with or without Huffman coding (§5.2, Appendix B;
the code itself is data in hpack_huffman.py), every field representation (§6) and dynamic
table size updates (§6.3). Anything that breaks the RFC raises HpackError, after which the
decoder's state is undefined: HTTP/2 ends the connection with COMPRESSION_ERROR.

The server never indexes what it sends (`encode_literal` is "without indexing, new name"),
so it keeps no encoder table and ignores the peer's SETTINGS_HEADER_TABLE_SIZE.

Speed: the steady state is a block of ~10 fields mostly indexed from the dynamic table, so
that case is a few comparisons and a list index per field; strings are slices, and Huffman
strings go through a 4-bit state machine built once at import. A block that changes nothing
in the table is remembered by its bytes until the table changes: Envoy's gRPC client sends
the same block for every Check once its fields are indexed.
"""

from __future__ import annotations

import functools

from jwtmesh_sidecar.hpack_huffman import EOS, HUFFMAN_CODES

__all__ = ["HeaderDecoder", "HpackError", "encode_literal", "huffman_decode"]


class HpackError(Exception):
    """A header block that breaks RFC 7541; the HTTP/2 connection must end with
    COMPRESSION_ERROR."""


# --- Static table: RFC 7541 Appendix A (index 1 is the first entry) ----------------------

STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""),  # 1
    (b":method", b"GET"),  # 2
    (b":method", b"POST"),  # 3
    (b":path", b"/"),  # 4
    (b":path", b"/index.html"),  # 5
    (b":scheme", b"http"),  # 6
    (b":scheme", b"https"),  # 7
    (b":status", b"200"),  # 8
    (b":status", b"204"),  # 9
    (b":status", b"206"),  # 10
    (b":status", b"304"),  # 11
    (b":status", b"400"),  # 12
    (b":status", b"404"),  # 13
    (b":status", b"500"),  # 14
    (b"accept-charset", b""),  # 15
    (b"accept-encoding", b"gzip, deflate"),  # 16
    (b"accept-language", b""),  # 17
    (b"accept-ranges", b""),  # 18
    (b"accept", b""),  # 19
    (b"access-control-allow-origin", b""),  # 20
    (b"age", b""),  # 21
    (b"allow", b""),  # 22
    (b"authorization", b""),  # 23
    (b"cache-control", b""),  # 24
    (b"content-disposition", b""),  # 25
    (b"content-encoding", b""),  # 26
    (b"content-language", b""),  # 27
    (b"content-length", b""),  # 28
    (b"content-location", b""),  # 29
    (b"content-range", b""),  # 30
    (b"content-type", b""),  # 31
    (b"cookie", b""),  # 32
    (b"date", b""),  # 33
    (b"etag", b""),  # 34
    (b"expect", b""),  # 35
    (b"expires", b""),  # 36
    (b"from", b""),  # 37
    (b"host", b""),  # 38
    (b"if-match", b""),  # 39
    (b"if-modified-since", b""),  # 40
    (b"if-none-match", b""),  # 41
    (b"if-range", b""),  # 42
    (b"if-unmodified-since", b""),  # 43
    (b"last-modified", b""),  # 44
    (b"link", b""),  # 45
    (b"location", b""),  # 46
    (b"max-forwards", b""),  # 47
    (b"proxy-authenticate", b""),  # 48
    (b"proxy-authorization", b""),  # 49
    (b"range", b""),  # 50
    (b"referer", b""),  # 51
    (b"refresh", b""),  # 52
    (b"retry-after", b""),  # 53
    (b"server", b""),  # 54
    (b"set-cookie", b""),  # 55
    (b"strict-transport-security", b""),  # 56
    (b"transfer-encoding", b""),  # 57
    (b"user-agent", b""),  # 58
    (b"vary", b""),  # 59
    (b"via", b""),  # 60
    (b"www-authenticate", b""),  # 61
)
_STATIC_LEN = len(STATIC_TABLE)  # 61

ENTRY_OVERHEAD = 32  # §4.1: each entry counts len(name) + len(value) + 32 octets
# The static entries with their sizes, as the dynamic table holds its own.
_STATIC_ENTRIES = tuple(
    (field, len(field[0]) + len(field[1]) + ENTRY_OVERHEAD) for field in STATIC_TABLE
)
MAX_INT = 1 << 32  # prefix integers must stay below this (no index or length comes close)


# --- Huffman decoding: a 4-bit state machine over the code tree (Appendix B) -------------
#
# A state is an internal node of the code tree (the root is 0), held pre-multiplied by 16 so
# that the next entry is `_NIBBLE[state | nibble]`. Each entry is (next state, the octet
# completed on the way or -1); codes are at least 5 bits, so a nibble completes at most
# one. A nibble that reaches EOS leads to None. A string may end at the root or inside the
# padding: at most 7 bits, all ones (§5.2), the nodes in _PADDING.


def _build_huffman_machine() -> tuple[list[tuple[int, int] | None], frozenset[int]]:
    # children[node] = [child for bit 0, child for bit 1]; a leaf is stored as ~symbol.
    children: list[list[int]] = [[0, 0]]
    padding = {0}  # the root, then the nodes reached by 1 to 7 one bits
    for symbol, (code, length) in enumerate(HUFFMAN_CODES):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = code >> shift & 1
            if not children[node][bit]:
                children.append([0, 0])
                children[node][bit] = len(children) - 1
                if code >> shift == (1 << (length - shift)) - 1 and length - shift <= 7:
                    padding.add(len(children) - 1)
            node = children[node][bit]
        children[node][code & 1] = ~symbol

    machine: list[tuple[int, int] | None] = []
    for state in range(len(children)):
        for nibble in range(16):
            node, emitted = state, -1
            for shift in (3, 2, 1, 0):
                child = children[node][nibble >> shift & 1]
                if child < 0:
                    emitted, node = ~child, 0
                    if emitted == EOS:
                        break
                else:
                    node = child
            machine.append(None if emitted == EOS else (node << 4, emitted))
    return machine, frozenset(state << 4 for state in padding)


_NIBBLE, _PADDING = _build_huffman_machine()


def huffman_decode(data: bytes) -> bytes:
    """The octets that the Huffman-coded `data` stands for (RFC 7541 §5.2).

    Raises HpackError if EOS is coded inside, or the padding is longer than 7 bits or not
    all ones."""
    nibble_table = _NIBBLE
    out = bytearray()
    state = 0
    for octet in data:
        entry = nibble_table[state | (octet >> 4)]
        if entry is None:
            raise HpackError("EOS inside a Huffman-coded string")
        state, emitted = entry
        if emitted >= 0:
            out.append(emitted)
        entry = nibble_table[state | (octet & 0x0F)]
        if entry is None:
            raise HpackError("EOS inside a Huffman-coded string")
        state, emitted = entry
        if emitted >= 0:
            out.append(emitted)
    if state not in _PADDING:
        raise HpackError("Huffman padding longer than 7 bits or not all ones")
    return bytes(out)


# --- Primitive types (§5) ---------------------------------------------------------------


def _integer_tail(block: bytes, pos: int, value: int) -> tuple[int, int]:
    """The rest of a prefix integer whose prefix was all ones (`value` = 2^N - 1), read from
    `pos`: (the integer, the position after it)."""
    shift = 0
    end = len(block)
    while True:
        if pos >= end:
            raise HpackError("truncated integer")
        octet = block[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        if value >= MAX_INT:
            raise HpackError("integer not below 2**32")
        if not octet & 0x80:
            return value, pos
        shift += 7
        if shift > 28:  # five octets hold 35 bits: a sixth could only be zeros, or too big
            raise HpackError("integer too long")


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """The string literal at `pos` (§5.2): (its octets, the position after it)."""
    if pos >= len(block):
        raise HpackError("truncated string")
    first = block[pos]
    length = first & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _integer_tail(block, pos, 0x7F)
    end = pos + length
    if end > len(block):
        raise HpackError("truncated string")
    if first & 0x80:
        if length <= _REMEMBERED_HUFFMAN_BYTES:
            return _remembered_huffman(block[pos:end]), end
        return huffman_decode(block[pos:end]), end
    return block[pos:end], end


# Envoy sends some fields as the same literal on every call, never indexed (its gRPC
# client's `:path`: 31 Huffman-coded octets per Check), so short strings are decoded once.
_REMEMBERED_HUFFMAN_BYTES = 128
_remembered_huffman = functools.lru_cache(maxsize=256)(huffman_decode)


def _integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """`value` as a prefix integer of `prefix_bits` bits, `flags` in the first octet's
    high bits (§5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_literal(name: bytes, value: bytes) -> bytes:
    """'Literal Header Field without Indexing — New Name' (0x00 prefix), no Huffman. For a
    server's fixed answers: nothing enters the peer's dynamic table, so no encoder state."""
    return b"\x00" + _integer(len(name), 7, 0) + name + _integer(len(value), 7, 0) + value


# --- The decoder (§3, §4, §6) -----------------------------------------------------------


MAX_REMEMBERED_BLOCKS = 64  # distinct unchanging blocks per connection
MAX_REMEMBERED_BLOCK = 1024  # octets; Envoy's steady-state block for a Check is ~50


class HeaderDecoder:
    """The decoding context of one HTTP/2 connection: its dynamic table lives from one
    header block to the next, so one decoder per connection, fed the blocks in order."""

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        # max_table_size: our SETTINGS_HEADER_TABLE_SIZE, the most a size update may ask
        # for, and the table's capacity until one does (§4.2).
        self._max_table_size = max_table_size
        self._max_header_list_size = max_header_list_size
        self._capacity = max_table_size
        self._size = 0
        # Newest first (index 62 is [0]), each entry with its §4.1 size: the steady state
        # indexes these, and the header list's size needs it for every field.
        self._dynamic: list[tuple[tuple[bytes, bytes], int]] = []
        # Blocks that changed nothing, by their bytes, with the table generation they were
        # decoded in: Envoy's gRPC client sends the same block for every call once its
        # fields are indexed, and the same bytes against the same table decode the same.
        self._generation = 0  # bumped by every insertion and size update
        self._unchanging: dict[bytes, tuple[int, list[tuple[bytes, bytes]]]] = {}

    @property
    def table(self) -> list[tuple[bytes, bytes]]:
        """The dynamic table's entries, newest first (a copy)."""
        return [field for field, _ in self._dynamic]

    @property
    def table_size(self) -> int:
        """The dynamic table's size: the sum of its entries' len(name) + len(value) + 32."""
        return self._size

    @property
    def table_capacity(self) -> int:
        """The dynamic table's maximum size now: max_table_size or the last size update."""
        return self._capacity

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """Decode one complete header block (HEADERS + CONTINUATION payloads joined).

        Names and values are raw bytes (Huffman decoded). Raises HpackError on any malformed
        input: index 0 or out of range, truncated integer/string, integer overflow (integers
        must stay below 2**32), invalid Huffman (EOS symbol inside, padding longer than 7
        bits or not all ones), a dynamic table size update above max_table_size or
        appearing after the first header field, and a decoded header list whose RFC 7540
        size (sum of len(name)+len(value)+32) exceeds max_header_list_size."""
        generation = self._generation
        remembered = self._unchanging.get(block)
        if remembered is not None and remembered[0] == generation:
            return list(remembered[1])
        fields = self._decode(block)
        # A block that changed the table left its generation behind: never used again.
        if self._generation == generation and len(block) <= MAX_REMEMBERED_BLOCK:
            if len(self._unchanging) >= MAX_REMEMBERED_BLOCKS:
                self._unchanging.clear()  # entries of older generations go with the rest
            self._unchanging[block] = (generation, list(fields))
        return fields

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        fields: list[tuple[bytes, bytes]] = []
        dynamic = self._dynamic
        budget = self._max_header_list_size  # what the header list may still take
        pos = 0
        end = len(block)
        while pos < end:
            first = block[pos]
            pos += 1
            if first & 0x80:  # 1xxxxxxx: Indexed Header Field (§6.1), the steady state
                index = first & 0x7F
                if index == 0x7F:
                    index, pos = _integer_tail(block, pos, 0x7F)
                position = index - _STATIC_LEN - 1
                if 0 <= position < len(dynamic):
                    field, size = dynamic[position]
                elif 0 < index <= _STATIC_LEN:
                    field, size = _STATIC_ENTRIES[index - 1]
                else:
                    raise HpackError(f"header table index {index} out of range")
            elif (first & 0xE0) == 0x20:  # 001xxxxx: Dynamic Table Size Update (§6.3)
                if fields:  # §4.2: only at the beginning of a header block
                    raise HpackError("dynamic table size update after a header field")
                capacity = first & 0x1F
                if capacity == 0x1F:
                    capacity, pos = _integer_tail(block, pos, 0x1F)
                if capacity > self._max_table_size:
                    raise HpackError(
                        f"dynamic table size update to {capacity}, above {self._max_table_size}"
                    )
                self._capacity = capacity
                self._generation += 1
                self._evict()
                continue
            else:
                # 01xxxxxx: with Incremental Indexing (§6.2.1), a 6-bit index; 0000xxxx:
                # without Indexing (§6.2.2) and 0001xxxx: Never Indexed (§6.2.3), 4 bits.
                # Index 0: a new name, a string literal before the value.
                mask = 0x3F if first & 0x40 else 0x0F
                index = first & mask
                if index == mask:
                    index, pos = _integer_tail(block, pos, mask)
                if index:
                    name = self._entry(index)[0]
                else:
                    name, pos = _string(block, pos)
                value, pos = _string(block, pos)
                field = (name, value)
                size = len(name) + len(value) + ENTRY_OVERHEAD
                if mask == 0x3F:
                    self._insert(field, size)
            budget -= size
            if budget < 0:
                raise HpackError(f"header list above {self._max_header_list_size} octets")
            fields.append(field)
        return fields

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        """The field at `index` of the index address space (§2.3.3)."""
        if index > _STATIC_LEN:
            position = index - _STATIC_LEN - 1
            if position < len(self._dynamic):
                return self._dynamic[position][0]
        elif index:
            return STATIC_TABLE[index - 1]
        raise HpackError(f"header table index {index} out of range")

    def _insert(self, field: tuple[bytes, bytes], size: int) -> None:
        """Add `field` at the front of the dynamic table, evicting from the end (§4.4)."""
        self._generation += 1
        if size > self._capacity:
            # Larger than the whole table: the table is emptied and nothing is added.
            self._dynamic.clear()
            self._size = 0
            return
        self._dynamic.insert(0, (field, size))  # at most capacity/32 entries: a short memmove
        self._size += size
        self._evict()

    def _evict(self) -> None:
        """Drop the oldest entries until the table fits its capacity (§4.3, §4.4)."""
        dynamic = self._dynamic
        while self._size > self._capacity:
            self._size -= dynamic.pop()[1]
