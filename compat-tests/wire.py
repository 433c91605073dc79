"""compat-tests/wire.py - the few Kafka wire messages the scenarios speak themselves.

Written here, not taken from a client library, so the hostile-input, restart,
long-poll and ListOffsets scenarios see exactly the bytes the broker sends (and
time exactly one request). Also the record batch v2 header, to read a Fetch
answer or a segment file. Standard library only.

Request header v1: int16 api_key, int16 api_version, int32 correlation_id,
int16-length client_id; v2 (flexible requests) adds tagged fields. Response
header v0: int32 correlation_id; v1 adds tagged fields. ApiVersions responses
always use header v0 (KIP-511).
"""

import base64
import socket
import struct
import time

API_FETCH, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 1, 2, 3, 18
FRAME_SIZE_MAX_BYTES = 16 << 20  # largest response read


class WireError(Exception):
    """The broker's bytes are not what the protocol says."""


def encode_request(api_key, api_version, correlation_id, body=b"",
                   client_id=b"runnel-compat", flexible=False):
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, size_bytes, deadline):
    """Reads exactly size_bytes; None when the peer closed first."""
    chunks = []
    remaining = size_bytes
    while remaining > 0:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            raise socket.timeout("no complete frame before the deadline")
        sock.settimeout(left_s)
        chunk = sock.recv(min(remaining, 1 << 16))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, timeout_s=5.0):
    """One size-prefixed response payload; None when the peer closed."""
    deadline = time.monotonic() + timeout_s
    prefix = recv_exact(sock, 4, deadline)
    if prefix is None:
        return None
    (size,) = struct.unpack(">i", prefix)
    if size < 4 or size > FRAME_SIZE_MAX_BYTES:
        raise WireError("response frame announces %d bytes" % size)
    payload = recv_exact(sock, size, deadline)
    if payload is None:
        raise WireError("connection closed in the middle of a %d-byte response" % size)
    return payload


def decode_api_versions_v0(payload):
    """ApiVersions response, v0 body: (correlation_id, error_code, {key: (min, max)}, trailing_bytes).

    Response header v0 (int32 correlation id), then int16 error code, int32
    count, count x (int16 api key, int16 min version, int16 max version).
    """
    if len(payload) < 10:
        raise WireError("ApiVersions response of %d bytes is too short" % len(payload))
    correlation_id, error_code, count = struct.unpack_from(">ihi", payload, 0)
    offset = 10
    if count < 0 or offset + 6 * count > len(payload):
        raise WireError("ApiVersions response announces %d api keys in %d bytes" % (count, len(payload)))
    api_keys = {}
    for _ in range(count):
        key, min_version, max_version = struct.unpack_from(">hhh", payload, offset)
        offset += 6
        api_keys[key] = (min_version, max_version)
    return correlation_id, error_code, api_keys, len(payload) - offset


def api_versions_v0(sock, correlation_id, timeout_s=5.0):
    sock.sendall(encode_request(API_API_VERSIONS, 0, correlation_id))
    payload = read_frame(sock, timeout_s)
    if payload is None:
        raise WireError("broker closed the connection instead of answering ApiVersions v0")
    return decode_api_versions_v0(payload)


class Reader:
    """Bounds-checked reader for flexible (compact, tagged) response bodies."""

    def __init__(self, buf):
        self.buf = buf
        self.offset = 0

    def take(self, size_bytes):
        if size_bytes < 0 or self.offset + size_bytes > len(self.buf):
            raise WireError("response truncated at byte %d (wanted %d more)" % (self.offset, size_bytes))
        chunk = self.buf[self.offset:self.offset + size_bytes]
        self.offset += size_bytes
        return chunk

    def int8(self):
        return struct.unpack(">b", self.take(1))[0]

    def int16(self):
        return struct.unpack(">h", self.take(2))[0]

    def int32(self):
        return struct.unpack(">i", self.take(4))[0]

    def int64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        size = self.int16()
        return None if size < 0 else self.take(size).decode("utf-8")

    def array(self, read_item):
        count = self.int32()
        if count < 0:
            return None
        if count > len(self.buf) - self.offset:
            raise WireError("array of %d items in %d bytes" % (count, len(self.buf) - self.offset))
        return [read_item() for _ in range(count)]

    def nullable_bytes(self):
        size = self.int32()
        return None if size < 0 else self.take(size)

    def uvarint(self):
        value, shift = 0, 0
        for _ in range(5):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise WireError("unsigned varint longer than 5 bytes at byte %d" % self.offset)

    def compact_string(self):
        size = self.uvarint()
        return None if size == 0 else self.take(size - 1).decode("utf-8")

    def compact_array(self, read_item):
        count = self.uvarint()
        if count == 0:
            return None
        if count - 1 > len(self.buf) - self.offset:
            raise WireError("compact array of %d items in %d bytes" % (count - 1, len(self.buf) - self.offset))
        return [read_item() for _ in range(count - 1)]

    def tagged_fields(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def string_bytes(text):
    raw = text.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def compact_string_bytes(text):
    raw = text.encode("utf-8")
    return uvarint_bytes(len(raw) + 1) + raw


def uvarint_bytes(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Record batch v2 header (Kafka's DefaultRecordBatch): the 61 bytes before the records.
BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_BYTES = BATCH_HEADER.size  # 61
BATCH_OVERHEAD_BYTES = 12  # base offset + batch length: what batch length does not count
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()
BATCH_CRC_FROM = 21  # the CRC covers a batch from its attributes to its end


def crc32c(data):
    """CRC-32C (Castagnoli), the checksum of a magic-2 batch; about 10 MB/s."""
    crc = 0xFFFFFFFF
    table = CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record_batches(buf, whole_only=True):
    """The record batch headers in buf (a Fetch response's records or a .log file).

    [{"base_offset", "last_offset", "count", "codec", "magic", "position",
    "size", "max_timestamp", "leader_epoch", "producer_id", "producer_epoch",
    "base_sequence", "crc"}]. Kafka may end a fetch with a
    partial batch, which is dropped; in a .log file (whole_only) a partial
    batch at the end is returned as {"partial": bytes left}.
    """
    batches = []
    position = 0
    while position < len(buf):
        if len(buf) - position < BATCH_HEADER_BYTES:
            if whole_only:
                batches.append({"partial": len(buf) - position, "position": position})
            break
        (base_offset, length, leader_epoch, magic, crc, attributes, last_delta, _base_ts, max_ts,
         producer_id, producer_epoch, base_sequence, count) = BATCH_HEADER.unpack_from(buf, position)
        size = BATCH_OVERHEAD_BYTES + length
        if magic != 2:
            raise WireError("batch at byte %d has magic %d, want 2" % (position, magic))
        if length < BATCH_HEADER_BYTES - BATCH_OVERHEAD_BYTES:
            raise WireError("batch at byte %d announces %d bytes" % (position, length))
        if position + size > len(buf):
            if whole_only:
                batches.append({"partial": len(buf) - position, "position": position})
            break
        batches.append({"base_offset": base_offset, "last_offset": base_offset + last_delta,
                        "count": count, "codec": CODEC_NAMES.get(attributes & 7, attributes & 7),
                        "magic": magic, "position": position, "size": size, "max_timestamp": max_ts,
                        "leader_epoch": leader_epoch, "producer_id": producer_id,
                        "producer_epoch": producer_epoch, "base_sequence": base_sequence, "crc": crc})
        position += size
    return batches


def fetch_v4_send(sock, correlation_id, topic, partition, fetch_offset, max_wait_ms, min_bytes,
                  max_bytes=1 << 20):
    """Sends Fetch v4 (what kafka-python 2.0.2 sends) for one partition; read it with fetch_v4_read."""
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)  # replica, wait, min, max, isolation
    body += struct.pack(">i", 1) + string_bytes(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, fetch_offset, max_bytes)
    sock.sendall(encode_request(API_FETCH, 4, correlation_id, body))


def fetch_v4_read(sock, correlation_id, timeout_s):
    """The Fetch v4 answer: {(topic, partition): {"error_code", "high_watermark", "records"}}."""
    payload = read_frame(sock, timeout_s)
    if payload is None:
        raise WireError("broker closed the connection on Fetch v4")
    r = Reader(payload)
    if r.int32() != correlation_id:
        raise WireError("Fetch v4: correlation id not echoed")
    r.int32()  # throttle_time_ms
    out = {}

    def aborted():
        return (r.int64(), r.int64())

    def topic():
        name = r.string()
        for _ in range(r.int32()):
            p = {"partition": r.int32(), "error_code": r.int16(), "high_watermark": r.int64(),
                 "last_stable_offset": r.int64(), "aborted": r.array(aborted),
                 "records": r.nullable_bytes() or b""}
            out[(name, p["partition"])] = p

    r.array(topic)
    if r.offset != len(payload):
        raise WireError("Fetch v4: %d bytes after the body" % (len(payload) - r.offset))
    return out


def list_offsets_v7(sock, correlation_id, topic, partition_timestamps):
    """ListOffsets v7 (flexible; the first with -3, max timestamp, KIP-734).

    partition_timestamps: [(partition, timestamp)]. Returns
    {partition: {"error_code", "timestamp", "offset", "leader_epoch"}}.
    """
    body = struct.pack(">ib", -1, 0)  # replica_id, isolation_level
    body += uvarint_bytes(2) + compact_string_bytes(topic) + uvarint_bytes(len(partition_timestamps) + 1)
    for partition, timestamp in partition_timestamps:
        body += struct.pack(">iiq", partition, -1, timestamp) + b"\x00"
    body += b"\x00"  # topic tagged fields
    body += b"\x00"  # request tagged fields
    sock.sendall(encode_request(API_LIST_OFFSETS, 7, correlation_id, body, flexible=True))
    payload = read_frame(sock)
    if payload is None:
        raise WireError("broker closed the connection on ListOffsets v7")
    r = Reader(payload)
    if r.int32() != correlation_id:
        raise WireError("ListOffsets v7: correlation id not echoed")
    r.tagged_fields()  # response header v1
    r.int32()  # throttle_time_ms
    out = {}

    def partition_item():
        p = {"partition": r.int32(), "error_code": r.int16(), "timestamp": r.int64(),
             "offset": r.int64(), "leader_epoch": r.int32()}
        r.tagged_fields()
        out[p["partition"]] = p

    def topic_item():
        r.compact_string()
        r.compact_array(partition_item)
        r.tagged_fields()

    r.compact_array(topic_item)
    r.tagged_fields()
    if r.offset != len(payload):
        raise WireError("ListOffsets v7: %d bytes after the body" % (len(payload) - r.offset))
    return out


def kafka_uuid_string(raw):
    """Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def metadata_v10(sock, correlation_id):
    """Metadata v10 (flexible; the first version with topic ids) for all topics.

    Returns {"cluster_id", "controller_id", "brokers": [...], "topics": {name: {...}}}.
    """
    body = b"\x00"  # Topics: null compact array = all topics
    body += b"\x00\x00\x00"  # AllowAutoTopicCreation, IncludeCluster/TopicAuthorizedOperations
    body += b"\x00"  # tagged fields
    sock.sendall(encode_request(API_METADATA, 10, correlation_id, body, flexible=True))
    payload = read_frame(sock)
    if payload is None:
        raise WireError("broker closed the connection on Metadata v10")
    r = Reader(payload)
    if r.int32() != correlation_id:
        raise WireError("Metadata v10: correlation id not echoed")
    r.tagged_fields()  # response header v1
    r.int32()  # throttle_time_ms

    def broker():
        b = {"node_id": r.int32(), "host": r.compact_string(), "port": r.int32(), "rack": r.compact_string()}
        r.tagged_fields()
        return b

    def int32_item():
        return r.int32()

    def partition():
        p = {"error_code": r.int16(), "partition": r.int32(), "leader": r.int32(),
             "leader_epoch": r.int32(), "replicas": r.compact_array(int32_item),
             "isr": r.compact_array(int32_item), "offline": r.compact_array(int32_item)}
        r.tagged_fields()
        return p

    def topic():
        t = {"error_code": r.int16(), "name": r.compact_string(),
             "topic_id": kafka_uuid_string(r.take(16)), "is_internal": r.int8() != 0,
             "partitions": r.compact_array(partition)}
        r.int32()  # topic_authorized_operations
        r.tagged_fields()
        return t

    out = {"brokers": r.compact_array(broker), "cluster_id": r.compact_string(),
           "controller_id": r.int32()}
    topics = r.compact_array(topic) or []
    r.int32()  # cluster_authorized_operations (v8-10)
    r.tagged_fields()
    if r.offset != len(payload):
        raise WireError("Metadata v10: %d bytes after the body" % (len(payload) - r.offset))
    out["topics"] = {t["name"]: t for t in topics}
    return out
