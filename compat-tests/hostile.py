"""compat-tests/hostile.py - hostile input and limits: a broker under abuse keeps serving the others.

    hostile_table      one hostile request per connection, from a table: absurd and negative
                       frame sizes, truncated frames, random bytes, unknown API keys and
                       versions, lying array counts and string lengths (classic and compact),
                       invalid topic names, a bad CRC, a batch whose length lies, gzip/zstd/lz4
                       batches that decompress to gigabytes on a topic the broker must
                       recompress and on a compacted one, requests naming thousands of topics
                       and partitions. Each gets Kafka's error code or a closed connection and
                       (runnel) a log line naming it; meanwhile a well-behaved producer and
                       consumer on its own connection sees no error and no stall
    connection_flood   thousands of connections opened at once, each asking ApiVersions: all
                       answered, the broker's RSS bounded, the well-behaved client still served
    slow_clients       a frame trickling in one byte a second and a consumer that never reads
                       its socket: both closed once connections.max.idle.ms passes without
                       progress, memory bounded, the others unaffected

The well-behaved client speaks Produce v8 and Fetch v4 itself (batches from
idempotence.batch) so that every request it makes is timed and checked.
The broker's RSS is read from /proc/<pid>/status; the figures are printed,
never asserted against a timing.
"""

import gzip
import random
import re
import resource
import selectors
import socket
import struct
import threading
import time

import wire
from harness import Failure, check, is_reference
from idempotence import API_PRODUCE, batch
from logs import create_topics

API_CREATE_TOPICS = 19
UNKNOWN_SERVER_ERROR, NONE, CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION = -1, 0, 2, 3
MESSAGE_TOO_LARGE, INVALID_TOPIC_EXCEPTION, INVALID_RECORD = 10, 17, 87

GOOD_TOPIC = "hostile-good"
STALL_S = 5.0                   # the good client's longest acceptable wait for one answer
LOG_WAIT_S = 3.0                # for a log line to reach the broker's stderr
RSS_BOUND_KIB = 1 << 20         # 1 GiB: far above what a sane broker needs here, far below a bomb
FLOOD_CONNECTIONS = 5000


def rss_kib(pid):
    """VmRSS of pid (and of its children for the reference script, which execs: same pid)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples the broker's VmRSS every 50 ms until stopped; keeps the largest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_kib = rss_kib(pid)
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.wait(0.05):
            self.max_kib = max(self.max_kib, rss_kib(self.pid))

    def stop(self):
        self.stop_event.set()
        self.join(timeout=2)
        return self.max_kib


# ---------------------------------------------------------------------------
# Frames, by hand.


def produce_v8_body(topic, partition, records, acks=-1):
    return (struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", 1) + wire.string_bytes(topic)
            + struct.pack(">ii", 1, partition) + struct.pack(">i", len(records)) + records)


def read_produce_v8(payload):
    """(error, message) of the one partition a Produce v8 answer names."""
    r = wire.Reader(payload)
    r.int32()  # correlation id
    check(r.int32() == 1, "Produce answer: want one topic")
    r.string()
    check(r.int32() == 1, "Produce answer: want one partition")
    r.int32()
    error = r.int16()
    r.int64(), r.int64(), r.int64()
    r.array(lambda: (r.int32(), r.string()))
    return error, r.string()


def keyed_batch(values, key=b"k"):
    """An uncompressed-style record stream with a key per record (compacted topics need keys)."""
    records = b""
    for i, value in enumerate(values):
        body = (b"\x00" + varint(0) + varint(i) + varint(len(key)) + key + varint(len(value)) + value + varint(0))
        records += varint(len(body)) + body
    return records


def varint(value):
    return wire.uvarint_bytes((value << 1) ^ (value >> 63))


def batch_with_records(records, count, codec):
    """A magic-2 batch around already encoded (possibly compressed) records."""
    ts = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", codec, count - 1, ts, ts, -1, -1, -1, count) + records
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, length, -1, 2, wire.crc32c(after_crc)) + after_crc


def bomb(codec, total_bytes):
    """A batch whose records decompress to total_bytes of 1 MiB keyed records.

    One chunk of 64 records is compressed once and repeated: gzip members and
    zstd frames concatenate; lz4 repeats the independent blocks of one frame.
    The CRC is computed the slow way over a few hundred KiB, which is fine."""
    value = bytes(1 << 20)
    chunk_count = 64
    chunk = keyed_batch([value] * chunk_count)
    repeats = max(1, total_bytes // len(chunk))
    if codec == 1:
        member = gzip.compress(chunk, compresslevel=6, mtime=0)
        data = member * repeats
    elif codec == 4:
        import zstandard
        frame = zstandard.ZstdCompressor(level=3).compress(chunk)
        data = frame * repeats
    elif codec == 3:
        import lz4.frame
        c = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX4MB, block_linked=False,
                                         content_checksum=False, compression_level=9)
        head = c.begin()
        body = c.compress(chunk)  # len(chunk) is a whole number of 4 MiB blocks + rest
        data = head + body * repeats + c.flush()
    else:
        raise ValueError(codec)
    return batch_with_records(data, chunk_count * repeats, codec), len(chunk) * repeats


# ---------------------------------------------------------------------------
# The well-behaved client: produce a batch, fetch it back, forever, timed.


class GoodClient(threading.Thread):
    def __init__(self, broker, topic=GOOD_TOPIC):
        super().__init__(daemon=True)
        self.addr = ("127.0.0.1", broker.port)
        self.topic = topic
        self.stop_event = threading.Event()
        self.errors = []
        self.rounds = 0
        self.max_wait_s = 0.0
        self.lock = threading.Lock()

    def run(self):
        try:
            prod = socket.create_connection(self.addr, timeout=10)
            cons = socket.create_connection(self.addr, timeout=10)
        except OSError as e:
            self.errors.append("connect: %s" % e)
            return
        corr, offset = 0, 0
        try:
            while not self.stop_event.is_set():
                corr += 1
                started = time.monotonic()
                prod.sendall(wire.encode_request(API_PRODUCE, 8, corr, produce_v8_body(
                    self.topic, 0, batch(-1, -1, -1, [b"good-%d" % corr]))))
                payload = wire.read_frame(prod, timeout_s=STALL_S)
                if payload is None:
                    raise Failure("produce connection closed by the broker")
                error, message = read_produce_v8(payload)
                if error != NONE:
                    raise Failure("produce answered error %d (%s)" % (error, message))
                wire.fetch_v4_send(cons, corr, self.topic, 0, offset, 0, 1)
                got = wire.fetch_v4_read(cons, corr, STALL_S)[(self.topic, 0)]
                if got["error_code"] != NONE:
                    raise Failure("fetch answered error %d" % got["error_code"])
                batches = [b for b in wire.record_batches(got["records"], whole_only=False) if "count" in b]
                if batches:
                    offset = batches[-1]["last_offset"] + 1
                with self.lock:
                    self.rounds += 1
                    self.max_wait_s = max(self.max_wait_s, time.monotonic() - started)
        except (OSError, Failure, wire.WireError) as e:
            self.errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            prod.close()
            cons.close()

    def rounds_now(self):
        with self.lock:
            return self.rounds

    def rate(self, seconds):
        before = self.rounds_now()
        time.sleep(seconds)
        return (self.rounds_now() - before) / seconds

    def finish(self):
        self.stop_event.set()
        self.join(timeout=STALL_S * 3)
        check(not self.is_alive(), "the well-behaved client is stuck")
        check(not self.errors, "the well-behaved client saw: %s" % "; ".join(self.errors))
        check(self.rounds > 0, "the well-behaved client never completed a round")
        check(self.max_wait_s < STALL_S, "the well-behaved client waited %.1f s for one answer" % self.max_wait_s)


def start_good_client(broker):
    create_topics(broker, [(GOOD_TOPIC, 1, None)])
    good = GoodClient(broker)
    good.start()
    # It must be producing before the abuse starts.
    deadline = time.monotonic() + 10
    while good.rounds_now() < 3 and not good.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    check(good.rounds_now() >= 3, "the well-behaved client did not get going: %s" % good.errors)
    return good


# ---------------------------------------------------------------------------
# Outcomes of one hostile connection.


def outcome(sock, timeout_s=10.0):
    """("closed", None) or ("answer", payload) for the first thing the broker does."""
    try:
        payload = wire.read_frame(sock, timeout_s=timeout_s)
    except (ConnectionResetError, BrokenPipeError):
        return "closed", None
    except socket.timeout:
        return "open", None
    return ("closed", None) if payload is None else ("answer", payload)


def send_raw(addr, data, close_after=False):
    s = socket.create_connection(addr, timeout=10)
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    if close_after:
        s.close()
        return None
    return s


def request(api_key, version, body, flexible=False):
    return wire.encode_request(api_key, version, 7, body, flexible=flexible)


def metadata_v4_body(names):
    return struct.pack(">i", len(names)) + b"".join(wire.string_bytes(n) for n in names) + b"\x00"


def create_topics_v4_body(names):
    out = struct.pack(">i", len(names))
    for n in names:
        out += wire.string_bytes(n) + struct.pack(">ihii", 1, 1, 0, 0)
    return out + struct.pack(">ib", 10000, 0)


def read_create_topics_v4(payload):
    r = wire.Reader(payload)
    r.int32()
    r.int32()  # throttle
    return {name: (err, msg) for name, err, msg in r.array(lambda: (r.string(), r.int16(), r.string()))}


def read_metadata_v4_topic_errors(payload):
    r = wire.Reader(payload)
    r.int32()
    r.int32()  # throttle
    r.array(lambda: (r.int32(), r.string(), r.int32(), r.string()))
    r.string()  # cluster id
    r.int32()  # controller

    def partition():
        return (r.int16(), r.int32(), r.int32(), r.array(r.int32), r.array(r.int32), r.array(r.int32))

    def topic():
        err, name, _internal = r.int16(), r.string(), r.int8()
        r.array(partition)
        return name, err

    return dict(r.array(topic))


# Each case: (name, what it sends, what is acceptable, a regex of runnel's log line or None).
# "send" returns (kind, detail): kind "closed", or "code" with the Kafka error code.


def case_frame(prefix_and_body, close_after=False):
    def run(ctx, broker, addr):
        s = send_raw(addr, prefix_and_body, close_after=close_after)
        if s is None:
            return "closed", None
        with s:
            kind, _ = outcome(s)
            return kind, None
    return run


def case_produce(topic, records, partition=0):
    def run(ctx, broker, addr):
        with send_raw(addr, request(API_PRODUCE, 8, produce_v8_body(topic, partition, records))) as s:
            kind, payload = outcome(s, timeout_s=30)
            if kind != "answer":
                return kind, None
            error, message = read_produce_v8(payload)
            return "code", (error, message)
    return run


def case_create_topics(names):
    def run(ctx, broker, addr):
        with send_raw(addr, request(API_CREATE_TOPICS, 4, create_topics_v4_body(names))) as s:
            kind, payload = outcome(s)
            if kind != "answer":
                return kind, None
            answers = read_create_topics_v4(payload)
            codes = sorted(set(err for err, _ in answers.values()))
            return "code", (codes[0] if len(codes) == 1 else codes, answers)
    return run


def case_many_topics(count):
    def run(ctx, broker, addr):
        names = ["no-such-topic-%05d" % i for i in range(count)]
        with send_raw(addr, request(wire.API_METADATA, 4, metadata_v4_body(names))) as s:
            kind, payload = outcome(s, timeout_s=20)
            if kind != "answer":
                return kind, None
            errors = read_metadata_v4_topic_errors(payload)
            check(len(errors) == count, "Metadata for %d topics answered %d" % (count, len(errors)))
            return "code", sorted(set(errors.values()))[0]
    return run


def case_many_partitions(count):
    def run(ctx, broker, addr):
        body = struct.pack(">iiiib", -1, 0, 1, 1 << 20, 0) + struct.pack(">i", 1) + wire.string_bytes(GOOD_TOPIC)
        body += struct.pack(">i", count) + b"".join(struct.pack(">iqi", 1000 + p, 0, 1024) for p in range(count))
        with send_raw(addr, request(wire.API_FETCH, 4, body)) as s:
            kind, payload = outcome(s, timeout_s=20)
            if kind != "answer":
                return kind, None
            r = wire.Reader(payload)
            r.int32()
            r.int32()
            codes = set()

            def topic():
                r.string()
                for _ in range(r.int32()):
                    r.int32()
                    codes.add(r.int16())
                    r.int64(), r.int64()
                    r.array(lambda: (r.int64(), r.int64()))
                    r.nullable_bytes()
            r.array(topic)
            return "code", sorted(codes)[0] if len(codes) == 1 else sorted(codes)
    return run


def hostile_cases(rng, reference=False):
    good = batch(-1, -1, -1, [b"hello"])
    bad_crc = bytearray(good)
    bad_crc[17] ^= 0xFF  # a CRC byte
    long_batch = bytearray(good)
    struct.pack_into(">i", long_batch, 8, struct.unpack_from(">i", good, 8)[0] + 1000)
    short_batch = bytearray(good)
    struct.pack_into(">i", short_batch, 8, 49)  # below the header's 49 bytes after the length: ok; 20 is a lie
    struct.pack_into(">i", short_batch, 8, 20)
    garbage = bytes(rng.randrange(256) for _ in range(64))
    while 0 <= struct.unpack(">h", garbage[:2])[0] < 200:
        garbage = bytes(rng.randrange(256) for _ in range(64))
    api = struct.pack(">hhih", 18, 0, 1, 0)  # an ApiVersions v0 header, to follow lying sizes

    def produce_topics_count(count):
        return request(API_PRODUCE, 8, struct.pack(">hhi", -1, -1, 1000) + struct.pack(">i", count))

    def metadata_name_len(n):
        return request(wire.API_METADATA, 4, struct.pack(">ih", 1, n) + b"abc" + b"\x00")

    def metadata_v9_compact(count_uvarint, after=b""):
        return request(wire.API_METADATA, 9, wire.uvarint_bytes(count_uvarint) + after, flexible=True)

    closed = {"closed"}
    bomb_bytes = 2 << 30
    bomb_codes = {MESSAGE_TOO_LARGE, INVALID_RECORD, CORRUPT_MESSAGE}
    if reference:
        # Kafka 4.4 fails on the gzip and zstd bombs with UNKNOWN_SERVER_ERROR
        # (after decompressing much of them: its RSS passes 700 MiB) and
        # answers INVALID_RECORD to the lz4 one; runnel stops at its bound
        # and answers MESSAGE_TOO_LARGE, which says what is wrong.
        bomb_codes.add(UNKNOWN_SERVER_ERROR)
    cases = [
        ("2 GiB length prefix", case_frame(struct.pack(">i", 0x7FFFFFFF) + api), closed,
         r"frame size 2147483647 outside"),
        ("negative length prefix", case_frame(struct.pack(">i", -12) + api), closed, r"frame size -12 outside"),
        ("truncated frame, then close", case_frame(struct.pack(">i", 100) + api, close_after=True), closed,
         r"closed .*in the middle of a 100-byte frame"),
        ("64 random bytes", case_frame(struct.pack(">i", len(garbage)) + garbage), closed,
         r"malformed request header|unsupported API key|too short"),
        ("unknown API key 9999", case_frame(request(9999, 0, b"")), closed, r"unsupported API key 9999"),
        ("Metadata v99", case_frame(request(wire.API_METADATA, 99, b"")), closed,
         r"version 99"),
        ("Produce with -1 topics", case_frame(produce_topics_count(-1)), closed, r"malformed Produce v8"),
        ("Produce with 2^31-1 topics", case_frame(produce_topics_count(0x7FFFFFFF)), closed,
         r"malformed Produce v8"),
        ("Metadata topic name of -2 bytes", case_frame(metadata_name_len(-2)), closed, r"malformed Metadata v4"),
        ("Metadata topic name of 32767 bytes", case_frame(metadata_name_len(32767)), closed,
         r"malformed Metadata v4"),
        ("Metadata v9 compact array of 2^32-2 topics", case_frame(metadata_v9_compact(0xFFFFFFFF)), closed,
         r"malformed Metadata v9"),
        ("Metadata v9 compact string past the end",
         case_frame(metadata_v9_compact(2, b"\x00" * 16 + wire.uvarint_bytes(5000) + b"ab")), closed,
         r"malformed Metadata v9"),
        ("CreateTopics with invalid names",
         case_create_topics(["bad/name", "..", "x" * 250, "sp ace"]), {("code", INVALID_TOPIC_EXCEPTION)}, None),
        ("Produce to an invalid topic name", case_produce("bad/name", good),
         {("code", INVALID_TOPIC_EXCEPTION), ("code", UNKNOWN_TOPIC_OR_PARTITION)}, None),
        ("a batch with a bad CRC", case_produce(GOOD_TOPIC, bytes(bad_crc)), {("code", CORRUPT_MESSAGE)},
         r"CORRUPT_MESSAGE"),
        # Kafka finds no whole batch in the records (ProduceRequest.validateRecords).
        ("a batch longer than its bytes", case_produce(GOOD_TOPIC, bytes(long_batch)),
         {("code", INVALID_RECORD)}, r"INVALID_RECORD"),
        ("a batch shorter than its header", case_produce(GOOD_TOPIC, bytes(short_batch)),
         {("code", CORRUPT_MESSAGE), ("code", INVALID_RECORD)}, r"CORRUPT_MESSAGE|INVALID_RECORD"),
    ]
    for codec, name in ((1, "gzip"), (4, "zstd"), (3, "lz4")):
        data, plain = bomb(codec, bomb_bytes)
        for topic in ("hostile-recompress", "hostile-compact"):
            cases.append(("%s bomb (%d KiB -> %d MiB) on %s" % (name, len(data) >> 10, plain >> 20, topic),
                          case_produce(topic, data), {("code", c) for c in bomb_codes},
                          r"MESSAGE_TOO_LARGE|INVALID_RECORD|CORRUPT_MESSAGE"))
    cases += [
        ("Metadata naming 20000 topics", case_many_topics(20000),
         {("code", UNKNOWN_TOPIC_OR_PARTITION), "closed"}, None),
        ("Fetch naming 10000 partitions", case_many_partitions(10000),
         {("code", UNKNOWN_TOPIC_OR_PARTITION), "closed"}, None),
    ]
    return cases


def scenario_hostile_table(ctx):
    """A table of hostile requests, one connection each, while a good client produces and consumes."""
    broker = ctx.broker()
    reference = is_reference(ctx)
    if reference:
        ctx.skip_check("the broker's log lines (the reference broker logs differently)")
    create_topics(broker, [("hostile-recompress", 1, {"compression.type": "snappy",
                                                      "max.message.bytes": "8388608"}),
                           ("hostile-compact", 1, {"cleanup.policy": "compact",
                                                   "max.message.bytes": "8388608"})])
    good = start_good_client(broker)
    sampler = RssSampler(broker.pid)
    sampler.start()
    addr = ("127.0.0.1", broker.port)
    seed = random.randrange(1 << 32)
    ctx.note("random seed", str(seed))
    stderr_path = broker.runs[-1][2]
    failures = []
    outcomes = {}
    try:
        for name, run, acceptable, log_re in hostile_cases(random.Random(seed), reference):
            started = time.monotonic()
            with open(stderr_path, "rb") as f:
                log_from = len(f.read())
            kind, detail = run(ctx, broker, addr)
            got = kind if kind != "code" else ("code", detail[0] if isinstance(detail, tuple) else detail)
            outcomes[name] = got
            ctx.note(name, "%r %r in %.2f s" % (kind, detail if not isinstance(detail, tuple) or
                                                len(repr(detail)) < 300 else repr(detail)[:300],
                                                time.monotonic() - started))
            ctx.say("%-55s -> %s" % (name, got if kind != "code" else "error %s" % (got[1],)))
            broker.check_alive()
            if got not in acceptable:
                failures.append("%s: got %r, want one of %r" % (name, got, sorted(map(str, acceptable))))
                continue
            if log_re and not reference:
                deadline = time.monotonic() + LOG_WAIT_S
                while True:
                    with open(stderr_path, "rb") as f:
                        f.seek(log_from)
                        text = f.read().decode("utf-8", "replace")
                    if re.search(log_re, text):
                        break
                    if time.monotonic() > deadline:
                        failures.append("%s: no broker log line matching %r" % (name, log_re))
                        break
                    time.sleep(0.05)
    finally:
        max_kib = sampler.stop()
        ctx.say("largest broker RSS during the table: %d MiB" % (max_kib >> 10))
    ctx.observe("each hostile request gets (an error code, or the connection closed)", outcomes)
    good.finish()
    ctx.say("well-behaved client: %d rounds, longest wait %.2f s" % (good.rounds, good.max_wait_s))
    check(not failures, "; ".join(failures))
    check(max_kib < RSS_BOUND_KIB or reference, "broker RSS reached %d MiB" % (max_kib >> 10))
    broker.check_alive()


# ---------------------------------------------------------------------------
# Connection flood.


def flood(addr, count, deadline):
    """Opens count connections at once, each sending ApiVersions v0; returns (answered, connected, s)."""
    sel = selectors.DefaultSelector()
    request_bytes = wire.encode_request(wire.API_API_VERSIONS, 0, 42)
    socks = []
    answered = connected = 0
    started = time.monotonic()
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(addr)
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
        pending = count
        while pending and time.monotonic() < deadline:
            for key, events in sel.select(timeout=0.2):
                s, state = key.fileobj, key.data
                if events & selectors.EVENT_WRITE and not state[1]:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        sel.unregister(s)
                        pending -= 1
                        continue
                    connected += 1
                    try:
                        s.send(request_bytes)
                    except OSError:
                        sel.unregister(s)
                        pending -= 1
                        continue
                    state[1] = True
                    sel.modify(s, selectors.EVENT_READ, state)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    pending -= 1
                    continue
                state[0] += data
                if len(state[0]) >= 4 and len(state[0]) >= 4 + struct.unpack(">i", state[0][:4])[0]:
                    corr, err, keys, _ = wire.decode_api_versions_v0(state[0][4:])
                    if corr == 42 and err == 0 and keys:
                        answered += 1
                    sel.unregister(s)
                    pending -= 1
        return answered, connected, time.monotonic() - started, socks
    finally:
        sel.close()


def scenario_connection_flood(ctx):
    """Thousands of connections at once, each asking ApiVersions: answered, RSS bounded, others served."""
    broker = ctx.broker()
    good = start_good_client(broker)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(FLOOD_CONNECTIONS, soft - 200)
    check(count >= 1000, "the fd limit (%d) leaves room for only %d connections" % (soft, count))
    sampler = RssSampler(broker.pid)
    sampler.start()
    idle_kib = rss_kib(broker.pid)
    before = good.rate(2.0)
    result = {}

    def run_flood():
        result["v"] = flood(("127.0.0.1", broker.port), count, time.monotonic() + 20)

    t = threading.Thread(target=run_flood, daemon=True)
    rounds0, t0 = good.rounds_now(), time.monotonic()
    t.start()
    t.join(timeout=25)
    during = (good.rounds_now() - rounds0) / max(0.001, time.monotonic() - t0)
    check("v" in result, "the flood did not finish within 25 s")
    answered, connected, seconds, socks = result["v"]
    held_kib = rss_kib(broker.pid)
    broker.check_alive()
    after = good.rate(1.0)  # all flood connections still open
    for s in socks:
        s.close()
    max_kib = sampler.stop()
    good.finish()
    ctx.say("%d connections: %d connected, %d answered in %.1f s" % (count, connected, answered, seconds))
    ctx.observe("every flood connection connected and was answered", [connected == count, answered == count])
    ctx.say("broker RSS: %d MiB idle, %d MiB largest, %d MiB holding them all"
            % (idle_kib >> 10, max_kib >> 10, held_kib >> 10))
    ctx.say("well-behaved client: %.0f rounds/s before, %.0f during (ratio %.2f), %.0f with all open"
            % (before, during, during / before if before else 0, after))
    if is_reference(ctx):
        # Kafka 4.4 answers some 4,600 of 5,000 within the 20 s (its acceptor
        # falls behind the listen backlog); said, not failed.
        ctx.skip_check("every flood connection answered (the reference answered %d of %d)" % (answered, count))
    else:
        check(answered == count, "only %d of %d flood connections got an ApiVersions answer" % (answered, count))
    check(max_kib < RSS_BOUND_KIB or is_reference(ctx), "broker RSS reached %d MiB" % (max_kib >> 10))
    check(during > 0 and after > 0, "the well-behaved client stopped during the flood")


# ---------------------------------------------------------------------------
# Slow clients.

IDLE_MS = 2000


def closed_by_peer(sock, timeout_s):
    """Reads (fast) until EOF or reset; returns (closed, bytes read)."""
    deadline = time.monotonic() + timeout_s
    total = 0
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(1 << 20)
            if not data:
                return True, total
            total += len(data)
    except (ConnectionResetError, BrokenPipeError):
        return True, total
    except socket.timeout:
        pass
    return False, total


def scenario_slow_clients(ctx):
    """A frame trickling in and a consumer that never reads: closed after connections.max.idle.ms."""
    broker = ctx.broker(overrides=["connections.max.idle.ms=%d" % IDLE_MS])
    good = start_good_client(broker)
    addr = ("127.0.0.1", broker.port)
    # Something to fetch: 16 MiB in 1 MiB batches.
    create_topics(broker, [("hostile-slow", 1, {"max.message.bytes": "2097152"})])
    with socket.create_connection(addr, timeout=10) as s:
        for i in range(16):
            s.sendall(wire.encode_request(API_PRODUCE, 8, i, produce_v8_body(
                "hostile-slow", 0, batch(-1, -1, -1, [bytes([i]) * (1 << 20)]))))
            error, message = read_produce_v8(wire.read_frame(s, 10))
            check(error == NONE, "producing to hostile-slow: error %d (%s)" % (error, message))
    sampler = RssSampler(broker.pid)
    sampler.start()

    # The stuck reader: 200 pipelined Fetches of 16 MiB each, a tiny receive buffer, never read.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(addr)
    stuck.setblocking(False)
    sent_fetches = 0
    for corr in range(200):
        body = struct.pack(">iiiib", -1, 0, 1, 16 << 20, 0) + struct.pack(">i", 1) + wire.string_bytes("hostile-slow")
        body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 16 << 20)
        try:
            stuck.send(wire.encode_request(wire.API_FETCH, 4, corr, body))
            sent_fetches += 1
        except BlockingIOError:
            break  # the broker stopped reading: its in-flight limit
    stuck.setblocking(True)

    # The trickler: a valid ApiVersions frame, one byte a second.
    trickle = socket.create_connection(addr, timeout=10)
    frame = wire.encode_request(wire.API_API_VERSIONS, 0, 9)
    trickle_closed_after = None
    started = time.monotonic()
    limit_s = IDLE_MS / 1000 * 4 + 4
    for i, b in enumerate(frame):
        try:
            trickle.send(bytes([b]))
        except OSError:
            trickle_closed_after = time.monotonic() - started
            break
        closed, _ = closed_by_peer(trickle, 1.0)
        if closed:
            trickle_closed_after = time.monotonic() - started
            break
        if time.monotonic() - started > limit_s:
            break
    trickle.close()
    stuck_closed, stuck_bytes = closed_by_peer(stuck, 5.0)
    stuck.close()
    max_kib = sampler.stop()
    good.finish()
    ctx.observe("a frame trickling in is closed", trickle_closed_after is not None)
    ctx.observe("a consumer that never reads is closed", stuck_closed)
    ctx.say("trickling connection: %s" % ("closed after %.1f s" % trickle_closed_after
                                         if trickle_closed_after is not None else "still open"))
    ctx.say("stuck reader: %d Fetches sent before the broker stopped reading; %s after %d bytes"
            % (sent_fetches, "closed" if stuck_closed else "still open", stuck_bytes))
    ctx.say("largest broker RSS: %d MiB; well-behaved client: %d rounds, longest wait %.2f s"
            % (max_kib >> 10, good.rounds, good.max_wait_s))
    if is_reference(ctx):
        # Kafka counts every byte read as activity, so it keeps the trickler
        # open; runnel gives a frame connections.max.idle.ms to arrive whole
        # (server/conn.h).
        if trickle_closed_after is None:
            ctx.skip_check("the trickling connection closed (Kafka 4.4 keeps it open)")
    else:
        check(trickle_closed_after is not None,
              "a frame trickling in at one byte a second was not closed within %.0f s "
              "(connections.max.idle.ms=%d)" % (limit_s, IDLE_MS))
    check(stuck_closed, "a consumer that never reads was not closed (connections.max.idle.ms=%d)" % IDLE_MS)
    check(max_kib < RSS_BOUND_KIB or is_reference(ctx), "broker RSS reached %d MiB" % (max_kib >> 10))
    broker.check_alive()


SCENARIOS = [
    ("hostile_table", scenario_hostile_table),
    ("connection_flood", scenario_connection_flood),
    ("slow_clients", scenario_slow_clients),
]
