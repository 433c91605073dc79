"""compat-tests/eos.py - exactly-once consume-transform-produce (KIP-98 offsets in transactions).

    eos_transform      librdkafka's consume-transform-produce loop: a read_committed consumer
                       in a group reads an input topic, a transactional producer writes each
                       record transformed to an output topic and commits the consumer's
                       offsets in the same transaction (send_offsets_to_transaction); the
                       broker is killed (SIGKILL) in the middle of a transaction and restarted,
                       the app aborts and rewinds where librdkafka says so and carries on; in
                       the end the output holds every input record transformed exactly once
                       and the group's committed offsets are the input's end
    eos_abort_offsets  offsets sent in a transaction that is aborted are never committed: while
                       it is open OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
                       and without it the last committed offset; after the abort the committed
                       offset has not moved, after a commit it has, and both survive a restart
"""

import logging
import socket
import struct
import time

from harness import Failure, check, eventually
from wire import Reader, compact_string_bytes, encode_request, read_frame, uvarint_bytes

API_OFFSET_FETCH = 9
UNSTABLE_OFFSET_COMMIT = 88
BATCH_RECORDS_MAX = 25
APP_ROUNDS_MAX = 400        # transactions (or failed attempts) the app may take
APP_TIME_MAX_S = 60.0


def confluent():
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    return confluent_kafka


def create_topics(broker, topics):
    """topics: [(name, partitions)], created with librdkafka's admin client (so that the scenarios
    run with either confluent-kafka: Debian's 1.7 or the venv's 2.x)."""
    ck = confluent()
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": logging.getLogger("confluent_kafka")})
    futures = admin.create_topics([NewTopic(name, count, 1) for name, count in topics], operation_timeout=30)
    for name, f in futures.items():
        try:
            f.result(30)
        except ck.KafkaException as e:
            raise Failure("creating %s: %s" % (name, e))

    def has_leaders():
        md = admin.list_topics(timeout=10)
        return all(name in md.topics and len(md.topics[name].partitions) == count
                   and all(p.leader >= 0 for p in md.topics[name].partitions.values()) for name, count in topics)
    eventually(has_leaders, "topics %r have leaders" % [n for n, _ in topics], timeout_s=20)


def produce_input(broker, topic, partitions, count):
    """count records "in-<i>" spread over partitions; returns {partition: [values]}."""
    ck = confluent()
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                            "logger": logging.getLogger("confluent_kafka")})
    sent = {p: [] for p in range(partitions)}
    for i in range(count):
        value = "in-%d" % i
        producer.produce(topic, value=value.encode(), partition=i % partitions)
        sent[i % partitions].append(value)
    check(producer.flush(30) == 0, "input records left unsent")
    return sent


def transform(value):
    return value.replace("in-", "out-").upper()


def read_committed(broker, topic, partitions, expect, timeout_s=15.0):
    """Every value readable with isolation.level=read_committed."""
    ck = confluent()
    consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "eos-reader",
                            "isolation.level": "read_committed", "enable.auto.commit": False,
                            "logger": logging.getLogger("confluent_kafka")})
    got = []
    try:
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if len(got) >= expect and time.monotonic() - quiet_since > 1.5:
                    break
                continue
            if msg.error():
                continue
            quiet_since = time.monotonic()
            got.append(msg.value().decode())
        return got
    finally:
        consumer.close()


def offset_fetch_v7(broker, group, topic, partitions, require_stable):
    """OffsetFetch v7 on a raw socket (single node: the broker is every group's coordinator).
    Returns {partition: (committed_offset, error_code)} and the top-level error."""
    body = (compact_string_bytes(group) + uvarint_bytes(2) + compact_string_bytes(topic)
            + uvarint_bytes(len(partitions) + 1) + b"".join(struct.pack(">i", p) for p in partitions)
            + b"\x00" + struct.pack(">?", require_stable) + b"\x00")
    host, port = broker.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(encode_request(API_OFFSET_FETCH, 7, 7, body, flexible=True))
        payload = read_frame(sock, timeout_s=10)
    if payload is None:
        raise Failure("the broker closed the connection instead of answering OffsetFetch v7")
    r = Reader(payload)
    check(r.int32() == 7, "OffsetFetch v7: wrong correlation id")
    r.tagged_fields()
    r.int32()  # throttle

    def partition():
        index, offset, _epoch = r.int32(), r.int64(), r.int32()
        r.compact_string()
        error = r.int16()
        r.tagged_fields()
        return index, (offset, error)

    def topic_entry():
        name = r.compact_string()
        parts = r.compact_array(partition) or []
        r.tagged_fields()
        return name, dict(parts)

    topics = dict(r.compact_array(topic_entry) or [])
    error = r.int16()
    return topics.get(topic, {}), error


def group_offsets(broker, group, topic, partitions, wait_s=20.0):
    """The group's committed offsets as an admin reads them (no require_stable), once the
    coordinator answers without error (it may be loading after a restart)."""
    def fetch():
        try:
            got, error = offset_fetch_v7(broker, group, topic, partitions, False)
        except (OSError, Failure):
            return None
        if error != 0 or any(e != 0 for _, e in got.values()):
            return None
        return {p: got.get(p, (-1, 0))[0] for p in partitions}
    return eventually(fetch, "OffsetFetch of group %s without error" % group, timeout_s=wait_s, interval_s=0.2)


class App:
    """The consume-transform-produce application, as librdkafka's transactions example writes it."""

    def __init__(self, broker, group, in_topic, out_topic, transactional_id):
        ck = confluent()
        self.ck = ck
        self.broker = broker
        self.in_topic, self.out_topic = in_topic, out_topic
        self.consumer = ck.Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": group, "isolation.level": "read_committed",
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
            "logger": logging.getLogger("confluent_kafka")})
        self.producer = ck.Producer({
            "bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5,
            "transaction.timeout.ms": 60000, "logger": logging.getLogger("confluent_kafka")})
        self.producer.init_transactions(30)
        self.consumer.subscribe([in_topic])
        self.commits = 0
        self.aborts = 0

    def close(self):
        self.consumer.close()
        self.producer.flush(5)

    def poll_batch(self, timeout_s=1.0):
        msgs = self.consumer.consume(BATCH_RECORDS_MAX, timeout_s)
        return [m for m in msgs if m.error() is None]

    def rewind(self):
        """Back to the committed offsets, as after an aborted transaction librdkafka's example does."""
        assignment = self.consumer.assignment()
        if not assignment:
            return
        committed = self.consumer.committed(assignment, timeout=30)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = self.ck.OFFSET_BEGINNING
            self.consumer.seek(tp)

    def begin_and_send(self, msgs, offsets=None):
        self.producer.begin_transaction()
        for m in msgs:
            self.producer.produce(self.out_topic, value=transform(m.value().decode()).encode(),
                                  key=("%d:%d" % (m.partition(), m.offset())).encode(), partition=m.partition())
        positions = offsets or self.consumer.position(self.consumer.assignment())
        self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(), 30)

    def commit(self):
        """commit_transaction, handling its errors as librdkafka documents: retry a retriable
        one, abort and rewind an abortable one. True when committed."""
        for _ in range(5):
            try:
                self.producer.commit_transaction(30)
                self.commits += 1
                return True
            except self.ck.KafkaException as e:
                err = e.args[0]
                if err.retriable():
                    continue
                if err.txn_requires_abort():
                    self.abort()
                    return False
                raise
        self.abort()
        return False

    def abort(self):
        self.producer.abort_transaction(30)
        self.aborts += 1
        self.rewind()

    def step(self, msgs, offsets=None):
        """One transaction over msgs; abortable errors abort and rewind."""
        try:
            self.begin_and_send(msgs, offsets)
        except self.ck.KafkaException as e:
            if not e.args[0].txn_requires_abort() and not e.args[0].retriable():
                raise
            self.abort()
            return False
        return self.commit()


def scenario_eos_transform(ctx):
    """Consume, transform, produce and commit offsets in one transaction, through a broker crash."""
    broker = ctx.broker()
    in_topic, out_topic, group, partitions, count = "eos-in", "eos-out", "eos-app", 2, 200
    create_topics(broker, [(in_topic, partitions), (out_topic, partitions)])
    sent = produce_input(broker, in_topic, partitions, count)
    app = App(broker, group, in_topic, out_topic, "eos-app-tx")
    killed = 0
    deadline = time.monotonic() + APP_TIME_MAX_S
    try:
        for _ in range(APP_ROUNDS_MAX):
            if time.monotonic() > deadline:
                raise Failure("the app did not finish in %.0f s (%d commits, %d aborts)"
                              % (APP_TIME_MAX_S, app.commits, app.aborts))
            done = group_offsets(broker, group, in_topic, range(partitions))
            if sum(max(o, 0) for o in done.values()) >= count:
                break
            msgs = app.poll_batch()
            if not msgs:
                continue
            if killed == 0 and app.commits >= 3:
                # The broker dies with a transaction open: records produced and offsets sent.
                try:
                    app.begin_and_send(msgs)
                except confluent().KafkaException as e:
                    raise Failure("the transaction before the crash failed: %s" % e)
                app.producer.flush(30)
                broker.kill()
                broker.start()
                killed += 1
                app.commit()
                continue
            app.step(msgs)
        ctx.note("app", "%d commits, %d aborts, broker killed %d time(s)" % (app.commits, app.aborts, killed))
    finally:
        app.close()
    check(killed == 1, "the broker was never killed in the middle (%d commits)" % app.commits)

    committed = group_offsets(broker, group, in_topic, range(partitions))
    ctx.observe("the group's committed offsets at the end", committed)
    want_offsets = {p: len(v) for p, v in sent.items()}
    check(committed == want_offsets, "group %s committed %r, want the input's end %r" % (group, committed,
                                                                                      want_offsets))
    want = sorted(transform(v) for vs in sent.values() for v in vs)
    got = read_committed(broker, out_topic, partitions, len(want))
    # How many transactions the crash aborted depends on timing: observed is the outcome.
    ctx.observe("the output read_committed, sorted", sorted(got))
    dups = sorted({v for v in got if got.count(v) > 1})
    missing = sorted(set(want) - set(got))
    check(not dups and not missing and sorted(got) == want,
          "output read_committed: %d records for %d inputs; duplicated %r, missing %r"
          % (len(got), len(want), dups[:10], missing[:10]))
    broker.check_alive()


def scenario_eos_abort_offsets(ctx):
    """Offsets sent in an aborted transaction do not move the committed offset; pending ones are unstable."""
    broker = ctx.broker()
    in_topic, out_topic, group, partitions, count = "eos-abort-in", "eos-abort-out", "eos-abort", 1, 60
    create_topics(broker, [(in_topic, partitions), (out_topic, partitions)])
    produce_input(broker, in_topic, partitions, count)
    app = App(broker, group, in_topic, out_topic, "eos-abort-tx")
    try:
        msgs = []
        deadline = time.monotonic() + 30
        while len(msgs) < 20 and time.monotonic() < deadline:
            msgs += app.poll_batch()
        check(len(msgs) >= 20, "read %d input records, want 20" % len(msgs))
        tp = confluent().TopicPartition
        check(app.step(msgs[:10], [tp(in_topic, 0, 10)]), "the first transaction did not commit")
        # EndTxn is answered once the outcome is durable; the markers that
        # make the offsets committed follow (in Kafka too).
        eventually(lambda: group_offsets(broker, group, in_topic, [0]) == {0: 10},
                   "committed offset 10 after the first transaction", timeout_s=10)

        # A transaction sends offsets past 10 ... and is aborted.
        app.producer.begin_transaction()
        app.producer.produce(out_topic, value=b"ABORTED", partition=0)
        app.producer.send_offsets_to_transaction([tp(in_topic, 0, 20)], app.consumer.consumer_group_metadata(), 30)
        app.producer.flush(30)
        stable, _ = offset_fetch_v7(broker, group, in_topic, [0], True)
        plain, _ = offset_fetch_v7(broker, group, in_topic, [0], False)
        ctx.note("OffsetFetch v7 with the transaction open (require_stable, plain)", (stable, plain))
        ctx.observe("OffsetFetch v7 with offsets pending (require_stable, plain)", [stable, plain])
        check(stable.get(0) == (-1, UNSTABLE_OFFSET_COMMIT),
              "require_stable with offsets pending: %r, want (-1, UNSTABLE_OFFSET_COMMIT)" % (stable.get(0),))
        check(plain.get(0) == (10, 0), "without require_stable: %r, want the last committed (10, 0)"
              % (plain.get(0),))
        app.producer.abort_transaction(30)
        eventually(lambda: offset_fetch_v7(broker, group, in_topic, [0], True)[0].get(0) == (10, 0),
                   "after the abort, require_stable answers the committed (10, 0)", timeout_s=10)

        # The next transaction, over records 10..19, commits offset 20.
        check(app.step(msgs[10:20], [tp(in_topic, 0, 20)]), "the second transaction did not commit")
    finally:
        app.close()
    eventually(lambda: group_offsets(broker, group, in_topic, [0]) == {0: 20},
               "committed offset 20 after the second transaction", timeout_s=10)
    out = read_committed(broker, out_topic, partitions, 20)
    ctx.observe("the output read_committed", out)
    check("ABORTED" not in out and len(out) == 20, "output read_committed: %d records %r" % (len(out), out[:5]))

    broker.kill()
    broker.start()
    after = group_offsets(broker, group, in_topic, [0])
    ctx.observe("committed after a SIGKILL and a restart", after)
    check(after == {0: 20}, "committed after a SIGKILL and a restart: %r, want {0: 20}" % after)
    stable, _ = offset_fetch_v7(broker, group, in_topic, [0], True)
    ctx.observe("OffsetFetch v7 require_stable after the restart", stable)
    check(stable.get(0) == (20, 0), "after the restart, require_stable: %r, want (20, 0)" % (stable.get(0),))
    broker.check_alive()


SCENARIOS = [
    ("eos_transform", scenario_eos_transform),
    ("eos_abort_offsets", scenario_eos_abort_offsets),
]
