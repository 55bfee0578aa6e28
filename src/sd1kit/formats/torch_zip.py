"""The zip layout of a torch checkpoint, read the way torch reads it, and refused where readers could disagree.

torch decides "zip" by the first four bytes (`PK\\x03\\x04`, torch.serialization._is_zipfile) and then reads
records through its own reader (caffe2's inline_container over miniz), whose name lookup ignores case and whose
choice among duplicate names differs from Python's `zipfile`. A scanner that reads the archive another way can be
shown a different pickle than torch loads. So this module accepts only archives on which every reader must agree:

- the members tile the file from byte 0 (local header, name, extra, data, optional data descriptor), in the order
  of the central directory, whose entries repeat each local header's name and method;
- the central directory follows the last member, the (zip64) end records follow it, and the file ends there;
- every name lies in one top folder (torch's archive name), no two names equal when compared without case;
- no member is encrypted, none uses a method other than stored or deflate, a stored member's sizes agree.

Format: PKWARE APPNOTE.TXT (sections 4.3.7 local header, 4.3.9 data descriptor, 4.3.12 central directory,
4.3.14-4.3.16 zip64 and end records).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sd1kit.errors import BadFileError

LOCAL, CENTRAL, END, END64, LOCATOR64, DESCRIPTOR = (
    b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08")
STORED, DEFLATED = 0, 8
MAX_MEMBERS = 200_000  # an SD1 checkpoint with EMA and optimizer state has a few thousand
MAX_INFLATED = 64 << 20  # a pickle member may hold (inflate to) this much, no more
MAX_DEFLATE_RATIO = 1032  # deflate's largest possible expansion (RFC 1951: 258 bytes per 2-bit code, ~1032:1)


@dataclass(frozen=True)
class ZipMember:
    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int
    method: int
    crc: int


@dataclass(frozen=True)
class ZipLayout:
    prefix: str  # torch's archive name: the top folder every record lies in
    members: tuple[ZipMember, ...]

    def find(self, record: str) -> ZipMember | None:
        want = ascii_lower(f"{self.prefix}/{record}")
        return next((m for m in self.members if ascii_lower(m.name) == want), None)


def read_zip_layout(path: Path, f: BinaryIO, size: int) -> ZipLayout:
    """Parse and check the whole layout; raise BadFileError naming the first ambiguity found."""
    cd_offset, cd_size, count = _end_records(path, f, size)
    if count > MAX_MEMBERS:
        raise BadFileError(path, f"zip archive with {count} members: more than a checkpoint holds")
    f.seek(cd_offset)
    directory = f.read(cd_size)
    if len(directory) != cd_size:
        raise BadFileError(path, "truncated zip central directory")
    entries = _central_entries(path, directory, count)
    members = _local_members(path, f, entries, cd_offset)
    _check_names(path, [m.name for m in members])
    return ZipLayout(members[0].name.split("/", 1)[0], tuple(members))


def _find_end_record(f: BinaryIO, size: int) -> tuple[bytes, int, bool]:
    """The tail of the file, the position in it of the end record every reader takes (miniz and Python's zipfile
    alike: the last signature with a whole record after it; -1: none), and whether that record's comment reaches
    exactly to the end of the file."""
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(END)
    while at >= 0 and at + 22 > tail_len:
        at = tail.rfind(END, 0, at)
    exact = at >= 0 and 22 + at + struct.unpack_from("<H", tail, at + 20)[0] == tail_len
    return tail, at, exact


def ends_like_a_zip(f: BinaryIO, size: int) -> bool:
    """Whether a zip reader would take the file for an archive (Python's zipfile.is_zipfile looks for this)."""
    return _find_end_record(f, size)[1] >= 0


def _end_records(path: Path, f: BinaryIO, size: int) -> tuple[int, int, int]:
    """The end of central directory record must end the file (a comment, if any, reaching exactly to the end)."""
    tail, at, exact = _find_end_record(f, size)
    tail_len = len(tail)
    if at < 0:
        raise BadFileError(path, "truncated or damaged torch checkpoint (no zip end record at its end)")
    if not exact:  # never fall back to an earlier record: readers would disagree on which one holds
        raise BadFileError(path, "zip archive whose end record is not at the end of the file "
                                 "(trailing data, a second archive or a record hidden in a comment): "
                                 "refused as ambiguous")
    disk, cd_disk, n_disk, n, cd_size, cd_offset, _ = struct.unpack_from("<HHHHIIH", tail, at + 4)
    end_at = size - tail_len + at
    if disk or cd_disk or n_disk != n:
        raise BadFileError(path, "multi-disk zip archive: not a torch checkpoint")
    structure_end = end_at
    if end_at >= 20:
        f.seek(end_at - 20)
        locator = f.read(20)
        if locator[:4] == LOCATOR64:
            _, end64_at, _ = struct.unpack_from("<IQI", locator, 4)
            n, cd_size, cd_offset = _end64(path, f, end64_at, end_at - 20)
            structure_end = end64_at
    if cd_offset + cd_size != structure_end:
        raise BadFileError(path, "zip central directory does not end where the end records begin "
                                 "(a second archive or hidden data): refused as ambiguous")
    return cd_offset, cd_size, n


def _end64(path: Path, f: BinaryIO, at: int, locator_at: int) -> tuple[int, int, int]:
    f.seek(at)
    record = f.read(56)
    if len(record) < 56 or record[:4] != END64:
        raise BadFileError(path, "zip64 end record missing where its locator points")
    rec_size, _, _, disk, cd_disk, n_disk, n, cd_size, cd_offset = struct.unpack_from("<QHHIIQQQQ", record, 4)
    if at + 12 + rec_size != locator_at:
        raise BadFileError(path, "zip64 end record does not reach its locator: refused as ambiguous")
    if disk or cd_disk or n_disk != n:
        raise BadFileError(path, "multi-disk zip archive: not a torch checkpoint")
    return n, cd_size, cd_offset


def _central_entries(path: Path, directory: bytes, count: int) -> list[tuple]:
    entries, at = [], 0
    for _ in range(count):
        if directory[at:at + 4] != CENTRAL or at + 46 > len(directory):
            raise BadFileError(path, "damaged zip central directory")
        (flags, method, crc, csize, usize, n_len, x_len, c_len, disk, offset) = _unpack_central(directory, at)
        name = directory[at + 46:at + 46 + n_len]
        extra = directory[at + 46 + n_len:at + 46 + n_len + x_len]
        csize, usize, offset = _zip64_fields(extra, csize, usize, offset)
        if disk not in (0, 0xFFFF):
            raise BadFileError(path, "multi-disk zip archive: not a torch checkpoint")
        entries.append((_decode(name, flags), name, flags, method, crc, csize, usize, offset))
        at += 46 + n_len + x_len + c_len
    if at != len(directory):
        raise BadFileError(path, "zip central directory holds more than its entry count says: refused as ambiguous")
    return entries


def _unpack_central(directory: bytes, at: int) -> tuple:
    (_, _, flags, method, _, _, crc, csize, usize, n_len, x_len, c_len, disk, _, _, offset) = struct.unpack_from(
        "<HHHHHHIIIHHHHHII", directory, at + 4)
    return flags, method, crc, csize, usize, n_len, x_len, c_len, disk, offset


def _zip64_fields(extra: bytes, csize: int, usize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field (id 1), for the fields the 32-bit record marks 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values, pos = [], at + 4
            for value in (usize, csize, offset):
                if value == 0xFFFFFFFF and pos + 8 <= at + 4 + length:
                    value = struct.unpack_from("<Q", extra, pos)[0]
                    pos += 8
                values.append(value)
            return values[1], values[0], values[2]
        at += 4 + length
    return csize, usize, offset


def _decode(name: bytes, flags: int) -> str:
    return name.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def _local_members(path: Path, f: BinaryIO, entries: list[tuple], cd_offset: int) -> list[ZipMember]:
    members, expected = [], {0}
    for text, raw, flags, method, crc, csize, usize, offset in entries:
        if offset not in expected:
            raise BadFileError(path, f"zip member {text!r} is not where the previous one ends "
                                     "(gaps, overlaps or reordering): refused as ambiguous")
        if flags & 0x41:
            raise BadFileError(path, f"zip member {text!r} is encrypted: not a torch checkpoint")
        if method not in (STORED, DEFLATED) or (method == STORED and csize != usize):
            raise BadFileError(path, f"zip member {text!r} uses compression method {method}: refused")
        if method == DEFLATED and usize > csize * MAX_DEFLATE_RATIO + 1024:
            raise BadFileError(path, f"compressed zip member {text!r} claims to inflate {csize} bytes to {usize}: "
                                     "more than deflate can (a zip bomb or a lie)")
        f.seek(offset)
        header = f.read(30)
        if len(header) < 30 or header[:4] != LOCAL:
            raise BadFileError(path, f"zip member {text!r}: no local header where the directory points")
        _, l_flags, l_method, _, _, _, _, _, n_len, x_len = struct.unpack_from("<HHHHHIIIHH", header, 4)
        if f.read(n_len) != raw or l_method != method or (l_flags & 0x41) != (flags & 0x41):
            raise BadFileError(path, f"zip member {text!r}: local header disagrees with the central directory "
                                     "(refused as ambiguous)")
        data_offset = offset + 30 + n_len + x_len
        expected = {data_offset + csize + n for n in _descriptor_lengths(f, data_offset + csize, l_flags)}
        members.append(ZipMember(text, offset, data_offset, csize, usize, method, crc))
    if cd_offset not in expected:
        raise BadFileError(path, "data between the last zip member and the central directory: refused as ambiguous")
    return members


def _descriptor_lengths(f: BinaryIO, at: int, flags: int) -> tuple[int, ...]:
    """The lengths a data descriptor after a member's data may have (APPNOTE 4.3.9: the signature is optional,
    the sizes 32- or 64-bit); the next header's offset decides which one it is."""
    if not flags & 0x08:
        return (0,)
    f.seek(at)
    return (16, 24) if f.read(4) == DESCRIPTOR else (12, 20)


def _check_names(path: Path, names: list[str]) -> None:
    if not names:
        raise BadFileError(path, "empty zip archive: not a torch checkpoint")
    prefix = names[0].split("/", 1)[0]
    seen: dict[str, str] = {}
    for name in names:
        if not name.startswith(prefix + "/") or "\x00" in name:
            raise BadFileError(path, f"zip member {name!r} lies outside the archive folder {prefix!r}: refused")
        key = ascii_lower(name)
        if key in seen:
            raise BadFileError(path, f"zip members {seen[key]!r} and {name!r} collide (readers pick different "
                                     "ones): refused as ambiguous")
        seen[key] = name


def ascii_lower(name: str) -> str:
    """Lower case as miniz compares names: ASCII letters only (Python's str.lower also folds e.g. the Kelvin sign)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def read_member(path: Path, f: BinaryIO, member: ZipMember, cap: int = MAX_INFLATED) -> bytes:
    """A member's bytes, inflated with a cap and checked against its declared size and CRC-32."""
    if member.size > cap:
        raise BadFileError(path, f"zip member {member.name!r} holds {member.size} bytes: more than a checkpoint's "
                                 f"pickle ({cap >> 20} MiB)")
    f.seek(member.data_offset)
    raw = f.read(member.compressed_size)
    if member.method == DEFLATED:
        inflater = zlib.decompressobj(-15)
        try:
            data = inflater.decompress(raw, member.size + 1)
        except zlib.error as e:
            raise BadFileError(path, f"zip member {member.name!r} does not inflate ({e})") from None
    else:
        data = raw
    if len(data) != member.size or zlib.crc32(data) != member.crc:
        raise BadFileError(path, f"zip member {member.name!r} does not match its declared size and CRC "
                                 "(damaged or forged)")
    return data
