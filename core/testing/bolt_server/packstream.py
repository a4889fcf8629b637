"""PackStream v1, the values of the Bolt protocol: what the server reads from
the driver and writes back. Integers, floats, text, bytes, lists, maps, and
structures (a tag byte and fields): the messages themselves, nodes and
relationships, and the temporal values the server supports (date, local
date-time, date-time with an offset, duration)."""

import datetime as dt
import struct
from dataclasses import dataclass, field

INT64 = (-(2**63), 2**63 - 1)
UNIX_EPOCH = dt.date(1970, 1, 1)
UNIX_EPOCH_DT = dt.datetime(1970, 1, 1)


class PackStreamError(ValueError):
    """Bytes that are no PackStream, or a value that has no PackStream form."""


@dataclass(frozen=True)
class Structure:
    tag: int
    fields: tuple = field(default_factory=tuple)


# -- writing -------------------------------------------------------------------------
def pack(value) -> bytes:
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _pack_size(size: int, tiny: int, markers: tuple[int, int, int], out: bytearray) -> None:
    if size < 16 and tiny is not None:
        out.append(tiny | size)
    elif size < 0x100:
        out += bytes((markers[0], size))
    elif size < 0x10000:
        out.append(markers[1])
        out += struct.pack(">H", size)
    elif size < 0x100000000:
        out.append(markers[2])
        out += struct.pack(">I", size)
    else:
        raise PackStreamError(f"{size} items or bytes are too many for PackStream")


def _pack(value, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, float):
        out.append(0xC1)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        _pack_size(len(encoded), 0x80, (0xD0, 0xD1, 0xD2), out)
        out += encoded
    elif isinstance(value, (bytes, bytearray)):
        _pack_size(len(value), None, (0xCC, 0xCD, 0xCE), out)
        out += value
    elif isinstance(value, (list, tuple)):
        _pack_size(len(value), 0x90, (0xD4, 0xD5, 0xD6), out)
        for item in value:
            _pack(item, out)
    elif isinstance(value, dict):
        _pack_size(len(value), 0xA0, (0xD8, 0xD9, 0xDA), out)
        for key, item in value.items():
            if not isinstance(key, str):
                raise PackStreamError(f"A map key must be text, not {type(key).__name__}")
            _pack(key, out)
            _pack(item, out)
    elif isinstance(value, Structure):
        if len(value.fields) > 15:
            raise PackStreamError("A structure has at most 15 fields")
        out += bytes((0xB0 | len(value.fields), value.tag))
        for item in value.fields:
            _pack(item, out)
    elif isinstance(value, (dt.date, dt.timedelta)):
        _pack(temporal_structure(value), out)
    else:
        raise PackStreamError(f"No PackStream form for a {type(value).__name__}")


def _pack_int(value: int, out: bytearray) -> None:
    if -16 <= value < 128:
        out += struct.pack(">b", value)
    elif -128 <= value < 128:
        out.append(0xC8)
        out += struct.pack(">b", value)
    elif -32768 <= value < 32768:
        out.append(0xC9)
        out += struct.pack(">h", value)
    elif -(2**31) <= value < 2**31:
        out.append(0xCA)
        out += struct.pack(">i", value)
    elif INT64[0] <= value <= INT64[1]:
        out.append(0xCB)
        out += struct.pack(">q", value)
    else:
        raise PackStreamError(f"{value} does not fit in 64 bits")


def temporal_structure(value) -> Structure:
    """Bolt 5's structures for Python's date, datetime and timedelta."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # LocalDateTime: seconds and nanoseconds
            delta = value - UNIX_EPOCH_DT
            return Structure(ord("d"), (_seconds(delta), delta.microseconds * 1000))
        offset = value.utcoffset()
        delta = value.replace(tzinfo=None) - offset - UNIX_EPOCH_DT  # DateTime, in UTC
        return Structure(
            ord("I"), (_seconds(delta), delta.microseconds * 1000, int(offset.total_seconds()))
        )
    if isinstance(value, dt.date):
        return Structure(ord("D"), ((value - UNIX_EPOCH).days,))
    return Structure(  # Duration: months, days, seconds, nanoseconds
        ord("E"), (0, value.days, value.seconds, value.microseconds * 1000)
    )


def _seconds(delta: dt.timedelta) -> int:
    return delta.days * 86400 + delta.seconds


def from_structure(value: Structure):
    """A parameter's structure as the Python value the database takes."""
    tag, fields = chr(value.tag), value.fields
    if tag == "D" and len(fields) == 1:
        return UNIX_EPOCH + dt.timedelta(days=fields[0])
    if tag == "d" and len(fields) == 2:
        return UNIX_EPOCH_DT + dt.timedelta(seconds=fields[0], microseconds=fields[1] // 1000)
    if tag == "I" and len(fields) == 3:
        zone = dt.timezone(dt.timedelta(seconds=fields[2]))
        utc = UNIX_EPOCH_DT + dt.timedelta(seconds=fields[0], microseconds=fields[1] // 1000)
        return (utc + dt.timedelta(seconds=fields[2])).replace(tzinfo=zone)
    if tag == "E" and len(fields) == 4:
        months, days, seconds, nanos = fields
        if months:
            raise PackStreamError("A duration in months has no fixed length here")
        return dt.timedelta(days=days, seconds=seconds, microseconds=nanos // 1000)
    raise PackStreamError(f"Parameters of type {tag!r} ({len(fields)} fields) are not supported")


# -- reading -------------------------------------------------------------------------
class Unpacker:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.at = 0

    def _take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise PackStreamError("The message ends inside a value")
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += size
        return chunk

    def _number(self, fmt: str) -> int:
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def unpack(self):
        marker = self._take(1)[0]
        high = marker & 0xF0
        if marker < 0x80 or marker >= 0xF0:
            return struct.unpack(">b", bytes((marker,)))[0]
        if high == 0x80:
            return self._text(marker & 0x0F)
        if high == 0x90:
            return self._list(marker & 0x0F)
        if high == 0xA0:
            return self._map(marker & 0x0F)
        if high == 0xB0:
            return self._structure(marker & 0x0F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if marker in simple:
            return simple[marker]
        sizes = {0xC8: ">b", 0xC9: ">h", 0xCA: ">i", 0xCB: ">q", 0xC1: ">d"}
        if marker in sizes:
            return self._number(sizes[marker])
        lengths = {0: ">B", 1: ">H", 2: ">I"}
        if 0xCC <= marker <= 0xCE:
            return self._take(self._number(lengths[marker - 0xCC]))
        if 0xD0 <= marker <= 0xD2:
            return self._text(self._number(lengths[marker - 0xD0]))
        if 0xD4 <= marker <= 0xD6:
            return self._list(self._number(lengths[marker - 0xD4]))
        if 0xD8 <= marker <= 0xDA:
            return self._map(self._number(lengths[marker - 0xD8]))
        raise PackStreamError(f"Unknown PackStream marker 0x{marker:02X}")

    def _text(self, size: int) -> str:
        try:
            return self._take(size).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PackStreamError(f"Text that is not UTF-8: {exc}") from exc

    def _list(self, size: int) -> list:
        return [self.unpack() for _ in range(size)]

    def _map(self, size: int) -> dict:
        result = {}
        for _ in range(size):
            key = self.unpack()
            if not isinstance(key, str):
                raise PackStreamError("A map key must be text")
            result[key] = self.unpack()
        return result

    def _structure(self, size: int) -> Structure:
        tag = self._take(1)[0]
        return Structure(tag, tuple(self.unpack() for _ in range(size)))


def unpack_message(data: bytes) -> Structure:
    """One Bolt message: a structure and nothing after it."""
    unpacker = Unpacker(data)
    message = unpacker.unpack()
    if not isinstance(message, Structure):
        raise PackStreamError("A Bolt message is a structure")
    if unpacker.at != len(data):
        raise PackStreamError("Bytes after the end of the message")
    return message
