"""compat-tests/idempotence.py - an idempotent producer's records land once, in order, restarts included.

    idempotent_wire    a producer id from InitProducerId; a retried batch is answered with its
                       first offsets and not written again; a gap in sequences, and an old
                       epoch, are refused with Kafka's codes; all of it still holds after a
                       SIGKILL (state rebuilt from the log) and a SIGTERM (state read back from
                       the producer snapshot); producer ids are never handed out twice
    idempotent_crash   librdkafka's idempotent producer (acks=all, retries on) keeps writing
                       while the broker is SIGKILLed and restarted under it; every record is
                       in the log exactly once, in the order it was produced

The wire story speaks InitProducerId v1 and Produce v8 itself, with batches
built here, so that it controls sequence numbers exactly as a retrying
client would send them.
"""

import logging
import os
import socket
import struct
import time

import wire
from wire import crc32c
from harness import Failure, check
from logs import create_topics, kcat_consume, kcat_observed

API_PRODUCE, API_INIT_PRODUCER_ID = 0, 22
NONE, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH = 0, 45, 47
# base offset, length, leader epoch, magic, crc, attributes, last offset delta, first timestamp
BATCH_MAX_TIMESTAMP_AT = 8 + 4 + 4 + 1 + 4 + 2 + 4 + 8
RETRIABLE = (14, 15)  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE

CRASH_MESSAGES = int(os.environ.get("RUNNEL_IDEMPOTENT_MESSAGES", "60000"))
CRASH_KILLS = 2
CRASH_DEADLINE_S = 90


# ---------------------------------------------------------------------------
# Batches and the two requests, by hand.

def varint(value):
    return wire.uvarint_bytes((value << 1) ^ (value >> 63))


def batch(producer_id, epoch, base_sequence, values, timestamp_ms=None):
    """An uncompressed magic-2 batch of values (bytes), keyless, as a producer sends it."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    records = b""
    for i, value in enumerate(values):
        body = (b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(value)) + value + varint(0))
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, producer_id, epoch, base_sequence,
                            len(values)) + records
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, the rest
    return struct.pack(">qiibI", 0, length, -1, 2, crc) + after_crc


class Connection:
    def __init__(self, broker, answers=None):
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=5.0)
        self.correlation_id = 0
        self.answers = answers  # when a list, every answer is appended to it, to be observed

    def close(self):
        self.sock.close()

    def call(self, api_key, version, body):
        self.correlation_id += 1
        self.sock.sendall(wire.encode_request(api_key, version, self.correlation_id, body))
        payload = wire.read_frame(self.sock, timeout_s=10.0)
        check(payload is not None, "the broker closed the connection instead of answering API %d" % api_key)
        r = wire.Reader(payload)
        check(r.int32() == self.correlation_id, "answer to API %d has the wrong correlation id" % api_key)
        return r

    def init_producer_id(self):
        """InitProducerId v1, no transactional id: (error, producer id, epoch).

        Retried while the answer is retriable, as clients do: Kafka answers
        COORDINATOR_LOAD_IN_PROGRESS until its first block of ids arrives."""
        deadline = time.monotonic() + 20
        while True:
            r = self.call(API_INIT_PRODUCER_ID, 1, struct.pack(">hi", -1, 60000))
            r.int32()  # throttle
            got = r.int16(), r.int64(), r.int16()
            if got[0] not in RETRIABLE or time.monotonic() > deadline:
                if self.answers is not None:  # the id is the broker's choice; the error and epoch are not
                    self.answers.append(["InitProducerId", got[0], got[2]])
                return got
            time.sleep(0.1)

    def produce(self, topic, partition, records, acks=-1):
        """Produce v8, one partition: (error, base offset, log append time, error message)."""
        body = (struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", 1) + wire.string_bytes(topic)
                + struct.pack(">ii", 1, partition) + struct.pack(">i", len(records)) + records)
        r = self.call(API_PRODUCE, 8, body)
        check(r.int32() == 1, "Produce answer: want one topic")
        r.string()
        check(r.int32() == 1, "Produce answer: want one partition")
        r.int32()
        error, base_offset, append_time, _start = r.int16(), r.int64(), r.int64(), r.int64()
        r.array(lambda: (r.int32(), r.string()))
        message = r.string()
        if self.answers is not None:
            # Kafka answers a duplicate with the time it kept for the batch, which
            # is the batch's own max timestamp here (CreateTime): said as such.
            max_timestamp = struct.unpack_from(">q", records, BATCH_MAX_TIMESTAMP_AT)[0]
            self.answers.append(["Produce", error, base_offset,
                                 "the batch's max timestamp" if append_time == max_timestamp else append_time])
        return error, base_offset, append_time, message


# ---------------------------------------------------------------------------
# Stories


def scenario_idempotent_wire(ctx):
    """A retried batch is answered with its first offsets; gaps and old epochs refused; restarts too."""
    broker = ctx.broker()
    topic = "iw-events"
    create_topics(broker, [(topic, 1, None)])
    answers = {"before any restart": []}
    conn = Connection(broker, answers["before any restart"])
    try:
        error, pid, epoch = conn.init_producer_id()
        check(error == NONE and pid >= 0 and epoch == 0,
              "InitProducerId answered error %d, producer id %d, epoch %d" % (error, pid, epoch))
        error, pid2, _ = conn.init_producer_id()
        check(error == NONE and pid2 != pid, "a second InitProducerId gave producer id %d again" % pid2)

        first = batch(pid, 0, 0, [b"a0", b"a1", b"a2"])
        second = batch(pid, 0, 3, [b"b3", b"b4"])
        got = conn.produce(topic, 0, first)
        check(got[0] == NONE and got[1] == 0, "first batch: %r, want offset 0" % (got,))
        got = conn.produce(topic, 0, second)
        check(got[0] == NONE and got[1] == 3, "second batch: %r, want offset 3" % (got,))
        # The producer did not hear back and sends both again: same answers, nothing written.
        got = conn.produce(topic, 0, first)
        check(got[0] == NONE and got[1] == 0, "retried first batch: %r, want its offset 0 again" % (got,))
        got = conn.produce(topic, 0, second)
        check(got[0] == NONE and got[1] == 3, "retried second batch: %r, want its offset 3 again" % (got,))
        # A batch after a lost one.
        got = conn.produce(topic, 0, batch(pid, 0, 9, [b"gap"]))
        check(got[0] == OUT_OF_ORDER_SEQUENCE_NUMBER,
              "sequence 9 after 4: %r, want OUT_OF_ORDER_SEQUENCE_NUMBER (45)" % (got,))
        # A new epoch (KIP-360 bump) starts at 0; then the old epoch is refused.
        got = conn.produce(topic, 0, batch(pid, 1, 0, [b"e1"]))
        check(got[0] == NONE and got[1] == 5, "epoch 1 sequence 0: %r, want offset 5" % (got,))
        got = conn.produce(topic, 0, batch(pid, 0, 5, [b"old"]))
        check(got[0] == INVALID_PRODUCER_EPOCH, "epoch 0 after epoch 1: %r, want INVALID_PRODUCER_EPOCH (47)"
              % (got,))
        got = conn.produce(topic, 0, batch(pid, 1, 5, [b"bad-start"]))
        check(got[0] == OUT_OF_ORDER_SEQUENCE_NUMBER, "epoch 1 sequence 5 after 0: %r, want 45" % (got,))
        last = batch(pid, 1, 1, [b"e1-1", b"e1-2"])
        got = conn.produce(topic, 0, last)
        check(got[0] == NONE and got[1] == 6, "epoch 1 sequence 1: %r, want offset 6" % (got,))
    finally:
        conn.close()

    for how in ("SIGKILL", "SIGTERM"):
        if how == "SIGKILL":
            broker.kill()
        else:
            broker.stop()
        broker.start()
        answers["after a %s" % how] = []
        conn = Connection(broker, answers["after a %s" % how])
        try:
            got = conn.produce(topic, 0, last)
            check(got[0] == NONE and got[1] == 6,
                  "after a %s and a restart, the retried last batch: %r, want its offset 6" % (how, got))
            got = conn.produce(topic, 0, batch(pid, 1, 2, [b"again"]))
            check(got[0] == OUT_OF_ORDER_SEQUENCE_NUMBER,
                  "after a %s and a restart, sequence 2 overlapping the last batch: %r, want 45" % (how, got))
            error, pid3, _ = conn.init_producer_id()
            check(error == NONE and pid3 > max(pid, pid2),
                  "after a %s and a restart InitProducerId gave %d; ids %d and %d were handed out before"
                  % (how, pid3, pid, pid2))
            pid2 = pid3
        finally:
            conn.close()
    for when, seen in answers.items():
        ctx.observe("answers %s (API, error, offset or epoch, ...)" % when, seen)
        # A refused batch has no offset: Kafka answers INVALID_OFFSET (-1), which
        # runnel once left at 0, an offset that exists.
        refused = [a for a in seen if a[0] == "Produce" and a[1] != NONE and a[2] != -1]
        check(not refused, "%s, refused Produce answers carry base offsets %r, want -1" % (when, refused))
    logs = kcat_consume(ctx, broker, topic, [0])
    ctx.observe("the log read back", [[r["offset"], r.get("payload")] for r in logs[0]])
    values = [r.get("payload") for r in logs[0]]
    want = ["a0", "a1", "a2", "b3", "b4", "e1", "e1-1", "e1-2"]
    check(values == want, "the log holds %r, want %r" % (values, want))
    broker.check_alive()


def scenario_idempotent_crash(ctx):
    """librdkafka's idempotent producer writes through two SIGKILLs; every record once, in order."""
    try:
        from confluent_kafka import Producer
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    broker = ctx.broker()
    topic = "ic-events"
    partitions = [0, 1, 2]
    create_topics(broker, [(topic, 3, None)])
    delivered = []
    failed = []

    def on_delivery(err, msg):
        if err is None:
            delivered.append((msg.partition(), msg.offset(), msg.key().decode()))
        else:
            failed.append((msg.key().decode(), str(err)))

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "linger.ms": 5, "batch.num.messages": 500,
                         "message.timeout.ms": 60000, "socket.timeout.ms": 5000,
                         "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
                         "logger": logging.getLogger("confluent_kafka")})
    kill_points = [CRASH_MESSAGES // 3, 2 * CRASH_MESSAGES // 3]
    deadline = time.monotonic() + CRASH_DEADLINE_S
    kills = 0
    i = 0
    while i < CRASH_MESSAGES and time.monotonic() < deadline:
        key = "k%07d" % i
        try:
            producer.produce(topic, key=key, value=key.encode() * 4, partition=i % 3, on_delivery=on_delivery)
            i += 1
        except BufferError:
            producer.poll(0.01)
            continue
        producer.poll(0)
        if kills < CRASH_KILLS and i == kill_points[kills]:
            # Requests are in flight: the producer must resend them, and the
            # restarted broker must know which it already has.
            broker.kill()
            time.sleep(0.2)
            broker.start()
            kills += 1
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    check(i == CRASH_MESSAGES and left == 0,
          "produced %d of %d within %d s, %d still queued" % (i, CRASH_MESSAGES, CRASH_DEADLINE_S, left))
    check(not failed, "%d records failed, first: %r" % (len(failed), failed[:3]))
    check(kills == CRASH_KILLS, "the broker was killed %d times, want %d" % (kills, CRASH_KILLS))

    logs = kcat_consume(ctx, broker, topic, partitions)
    ctx.observe("the log read back by partition", {p: kcat_observed(logs[p]) for p in partitions})
    acked = {key: (p, offset) for p, offset, key in delivered}
    for p in partitions:
        keys = [r.get("key") for r in logs[p]]
        want = ["k%07d" % n for n in range(p, CRASH_MESSAGES, 3)]
        if keys != want:
            dups = len(keys) - len(set(keys))
            missing = len(set(want) - set(keys))
            first_diff = next((n for n, (a, b) in enumerate(zip(keys, want)) if a != b), min(len(keys), len(want)))
            raise Failure("partition %d holds %d records (%d duplicates, %d missing), want %d in order; first "
                          "difference at position %d: %r vs %r" % (p, len(keys), dups, missing, len(want),
                                                                    first_diff, keys[first_diff:first_diff + 3],
                                                                    want[first_diff:first_diff + 3]))
        for r in logs[p]:
            check(acked.get(r["key"]) == (p, r["offset"]), "%s is at %d/%d but was acknowledged at %r"
                  % (r["key"], p, r["offset"], acked.get(r["key"])))
    ctx.say("%d records through %d SIGKILLs: each once, in order, at its acknowledged offset"
            % (CRASH_MESSAGES, kills))
    broker.check_alive()


SCENARIOS = [
    ("idempotent_wire", scenario_idempotent_wire),
    ("idempotent_crash", scenario_idempotent_crash),
]
