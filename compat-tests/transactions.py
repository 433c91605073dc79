"""compat-tests/transactions.py - transactions commit or vanish as a whole, for every reader.

    txn_commit_abort   librdkafka's transactional producer commits some transactions and
                       aborts others over two partitions; a read_committed consumer sees
                       exactly the committed records, a read_uncommitted one all of them;
                       ListOffsets read_committed stops at the last stable offset while a
                       transaction is open; still so after a SIGKILL and a restart
    txn_zombie         a second producer with the same transactional id fences the first:
                       the zombie's commit fails, its open transaction is aborted, and what it
                       wrote is never visible to read_committed consumers
    txn_timeout        a transaction left open past its timeout is aborted by the coordinator:
                       the last stable offset moves on and read_committed readers are not stuck
    txn_admin          kafka-transactions.sh (Kafka 4.4's tool) lists, describes and shows the
                       producers of what the stories above leave behind
    txn_wire           the coordinator's requests by hand: FindCoordinator, InitProducerId,
                       AddPartitionsToTxn v1 (a client's) and v5 (a broker's batched check
                       of several transactions, verify-only and not), EndTxn

Consumers assign partitions and seek: no group is needed to read.
"""

import logging
import os
import socket
import struct
import time

import wire

from harness import Failure, check, eventually
from logs import KAFKA_LIB, JAVA_TIMEOUT_S, create_topics

READ_S = 8.0


def confluent():
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    return confluent_kafka


def transactional_producer(broker, transactional_id, **extra):
    ck = confluent()
    config = {"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5,
              "logger": logging.getLogger("confluent_kafka")}
    config.update(extra)
    return ck.Producer(config)


def read_all(broker, topic, partitions, isolation, expect=None, timeout_s=READ_S):
    """Values of every record readable under isolation, per partition, in order."""
    ck = confluent()
    consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "txn-reader",
                            "isolation.level": isolation, "enable.auto.commit": False,
                            "logger": logging.getLogger("confluent_kafka")})
    try:
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in partitions])
        got = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                # Until the expected count, or a second of silence when none is given.
                if expect is None and time.monotonic() - quiet_since > 1.5:
                    break
                continue
            if msg.error():
                continue
            quiet_since = time.monotonic()
            got[msg.partition()].append(msg.value().decode())
            if expect is not None and sum(len(v) for v in got.values()) >= expect:
                break
        return got
    finally:
        consumer.close()


def last_stable_offsets(broker, topic, partitions):
    """ListOffsets latest as a read_committed and as a read_uncommitted consumer asks it (librdkafka
    sends the consumer's isolation level): (last stable offsets, high watermarks) per partition."""
    ck = confluent()
    out = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "txn-lso",
                                "isolation.level": isolation, "logger": logging.getLogger("confluent_kafka")})
        try:
            out.append({p: consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)[1]
                        for p in partitions})
        finally:
            consumer.close()
    return out[0], out[1]


def run_transaction(producer, topic, values, commit):
    producer.begin_transaction()
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=i % 2)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.flush(30)
        producer.abort_transaction(30)


def scenario_txn_commit_abort(ctx):
    """Committed transactions are read, aborted ones skipped (read_committed); restarts keep it so."""
    broker = ctx.broker()
    topic = "tx-events"
    create_topics(broker, [(topic, 2, None)])
    producer = transactional_producer(broker, "tx-commit-abort")
    producer.init_transactions(30)
    want = {0: [], 1: []}
    every = {0: [], 1: []}
    for n in range(6):
        values = ["t%d-r%d" % (n, i) for i in range(10)]
        commit = n % 3 != 1
        run_transaction(producer, topic, values, commit)
        for i, v in enumerate(values):
            every[i % 2].append(v)
            if commit:
                want[i % 2].append(v)

    # An open transaction holds the last stable offset where it began.
    producer.begin_transaction()
    producer.produce(topic, value=b"open-0", partition=0)
    producer.flush(30)
    lso, high = last_stable_offsets(broker, topic, [0, 1])
    ctx.note("LSO and high watermark with a transaction open on partition 0", (lso, high))
    ctx.observe("with a transaction open on partition 0: last stable offsets, high watermarks", [lso, high])
    check(lso[0] < high[0], "partition 0: read_committed latest offset %d, high watermark %d: the open "
          "transaction's record must be past the last stable offset" % (lso[0], high[0]))
    producer.commit_transaction(30)
    want[0].append("open-0")
    every[0].append("open-0")

    def verify(when):
        committed = read_all(broker, topic, [0, 1], "read_committed", expect=sum(map(len, want.values())))
        ctx.observe("%s, read_committed reads" % when, committed)
        check(committed == want, "%s, read_committed: got %r, want %r" % (when, committed, want))
        uncommitted = read_all(broker, topic, [0, 1], "read_uncommitted", expect=sum(map(len, every.values())))
        ctx.observe("%s, read_uncommitted reads" % when, uncommitted)
        ctx.observe("%s, last stable offsets and high watermarks" % when,
                    last_stable_offsets(broker, topic, [0, 1]))
        check(uncommitted == every, "%s, read_uncommitted: got %r, want every record %r" % (when, uncommitted, every))

    verify("before any restart")
    del producer
    broker.kill()
    broker.start()
    verify("after a SIGKILL and a restart")
    # The same transactional id carries on after the restart.
    producer = transactional_producer(broker, "tx-commit-abort")
    producer.init_transactions(30)
    run_transaction(producer, topic, ["after-restart-0", "after-restart-1"], True)
    want[0].append("after-restart-0")
    want[1].append("after-restart-1")
    every[0].append("after-restart-0")
    every[1].append("after-restart-1")
    del producer
    broker.stop()
    broker.start()
    verify("after a SIGTERM and a restart")
    broker.check_alive()


def scenario_txn_zombie(ctx):
    """A new producer with the same transactional id fences the old one; its writes never show."""
    ck = confluent()
    broker = ctx.broker()
    topic = "tz-events"
    create_topics(broker, [(topic, 2, None)])
    zombie = transactional_producer(broker, "tx-zombie")
    zombie.init_transactions(30)
    zombie.begin_transaction()
    for i in range(4):
        zombie.produce(topic, value=b"zombie-%d" % i, partition=i % 2)
    zombie.flush(30)

    fresh = transactional_producer(broker, "tx-zombie")
    fresh.init_transactions(30)  # fences the zombie and aborts its transaction
    run_transaction(fresh, topic, ["fresh-0", "fresh-1"], True)

    try:
        zombie.produce(topic, value=b"zombie-late", partition=0)
        zombie.commit_transaction(15)
        raise Failure("the fenced producer committed a transaction")
    except ck.KafkaException as e:
        err = e.args[0]
        ctx.note("the zombie's commit", "%s (fatal=%s)" % (err.str(), err.fatal()))
        ctx.observe("the zombie's commit fails with", {"error": err.name(), "fatal": err.fatal(),
                                                        "abortable": err.txn_requires_abort()})
        check(err.fatal() or err.txn_requires_abort(), "the zombie's failure is neither fatal nor abortable: %s"
              % err.str())
    committed = read_all(broker, topic, [0, 1], "read_committed", expect=2)
    ctx.observe("read_committed after the fencing", committed)
    ctx.observe("last stable offsets and high watermarks after the fencing", last_stable_offsets(broker, topic, [0, 1]))
    check(committed == {0: ["fresh-0"], 1: ["fresh-1"]},
          "read_committed after the fencing holds %r, want only the new producer's records" % (committed,))
    broker.check_alive()


def scenario_txn_timeout(ctx):
    """An abandoned transaction is aborted after transaction.timeout.ms; readers move past it."""
    broker = ctx.broker(overrides=["transaction.abort.timed.out.transaction.cleanup.interval.ms=500"])
    topic = "tt-events"
    create_topics(broker, [(topic, 2, None)])
    abandoned = transactional_producer(broker, "tx-abandoned", **{"transaction.timeout.ms": 2000})
    abandoned.init_transactions(30)
    abandoned.begin_transaction()
    abandoned.produce(topic, value=b"abandoned", partition=0)
    abandoned.flush(30)
    # Another producer commits after it, on the same partition.
    other = transactional_producer(broker, "tx-other")
    other.init_transactions(30)
    run_transaction(other, topic, ["after-0", "after-1"], True)

    def moved():
        lso, high = last_stable_offsets(broker, topic, [0])
        return lso[0] == high[0]
    eventually(moved, "the last stable offset of partition 0 to reach the high watermark once the abandoned "
               "transaction timed out", timeout_s=20.0, interval_s=0.5)
    committed = read_all(broker, topic, [0, 1], "read_committed", expect=2)
    ctx.observe("read_committed once the abandoned transaction timed out", committed)
    ctx.observe("last stable offsets and high watermarks then", last_stable_offsets(broker, topic, [0, 1]))
    check(committed == {0: ["after-0"], 1: ["after-1"]},
          "read_committed holds %r, want the other producer's records only" % (committed,))
    broker.check_alive()


def tool(ctx, broker, *args):
    """kafka-transactions.sh, as its script runs it."""
    argv = ["java", "-cp", os.path.join(KAFKA_LIB, "*"), "org.apache.kafka.tools.TransactionsCommand",
            "--bootstrap-server", broker.bootstrap] + list(args)
    _, out, _ = ctx.run(argv, timeout_s=JAVA_TIMEOUT_S)
    return [line.split() for line in out.splitlines() if line.strip() and "SLF4J" not in line]


def scenario_txn_admin(ctx):
    """kafka-transactions.sh list, describe and describe-producers show the coordinator's state."""
    check(os.path.isdir(KAFKA_LIB), "Kafka's jars are not in %s (bash tools/deps.sh test fetches them)" % KAFKA_LIB)
    broker = ctx.broker()
    topic = "ta-events"
    create_topics(broker, [(topic, 2, None)])
    done = transactional_producer(broker, "tx-done")
    done.init_transactions(30)
    run_transaction(done, topic, ["d0", "d1"], True)
    open_one = transactional_producer(broker, "tx-open")
    open_one.init_transactions(30)
    open_one.begin_transaction()
    open_one.produce(topic, value=b"o0", partition=1)
    open_one.flush(30)

    rows = tool(ctx, broker, "list")
    listed = {row[0]: row for row in rows[1:]}
    # Columns: TransactionalId Coordinator ProducerId TransactionState; the producer id is the broker's choice.
    ctx.observe("list", [rows[0]] + sorted([r[0], r[1], r[3]] for r in rows[1:]))
    check(set(listed) >= {"tx-done", "tx-open"}, "list shows %r" % sorted(listed))
    check(listed["tx-done"][3] == "CompleteCommit" and listed["tx-open"][3] == "Ongoing",
          "list states: %r" % listed)
    rows = tool(ctx, broker, "describe", "--transactional-id", "tx-open")
    # CoordinatorId TransactionalId ProducerId ProducerEpoch TransactionState TransactionTimeoutMs
    # CurrentTransactionStartTimeMs TransactionDurationMs TopicPartitions: ids and times left out.
    ctx.observe("describe tx-open", [rows[0]] + [[r[0], r[1], r[3], r[4], r[5], r[-1]] for r in rows[1:]])
    check(len(rows) == 2 and rows[1][1] == "tx-open" and rows[1][4] == "Ongoing" and
          rows[1][-1] == "%s-1" % topic, "describe tx-open: %r" % rows)
    producers = tool(ctx, broker, "describe-producers", "--topic", topic, "--partition", "1")
    starts = [row[5] for row in producers[1:]]
    # ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset
    ctx.observe("describe-producers of partition 1 (without ids and times)",
                [producers[0]] + sorted([r[1], r[2], r[3], r[5]] for r in producers[1:]))
    check(len(producers) == 3 and "None" in starts and any(s.isdigit() for s in starts),
          "describe-producers of partition 1: %r (want the committed producer and the open one with its "
          "transaction's first offset)" % producers)
    open_one.abort_transaction(30)
    broker.check_alive()


API_FIND_COORDINATOR, API_INIT_PRODUCER_ID, API_ADD_PARTITIONS, API_END_TXN = 10, 22, 24, 26
RETRIABLE = (14, 15, 16, 51)  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS


class TxnWire:
    """The transaction coordinator's requests, encoded here."""

    def __init__(self, broker):
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10.0)
        self.correlation_id = 0
        self.answers = []  # [request, what it answered], ids left out, to be observed

    def close(self):
        self.sock.close()

    def call(self, api_key, version, body, flexible=False):
        self.correlation_id += 1
        self.sock.sendall(wire.encode_request(api_key, version, self.correlation_id, body, flexible=flexible))
        payload = wire.read_frame(self.sock, timeout_s=15.0)
        check(payload is not None, "the broker closed the connection instead of answering API %d v%d"
              % (api_key, version))
        r = wire.Reader(payload)
        check(r.int32() == self.correlation_id, "API %d: wrong correlation id" % api_key)
        if flexible:
            r.tagged_fields()
        return r

    def retry(self, fn, what):
        deadline = time.monotonic() + 30
        while True:
            got = fn()
            if got[0] not in RETRIABLE or time.monotonic() > deadline:
                seen = [got[0], got[2]] if what == "InitProducerId" else list(got)  # not the producer id
                self.answers.append([what, [sorted(x.items()) if isinstance(x, dict) else x for x in seen]])
                return got
            time.sleep(0.2)

    def find_coordinator(self, transactional_id):
        def once():
            r = self.call(API_FIND_COORDINATOR, 1, wire.string_bytes(transactional_id) + b"\x01")
            r.int32()
            return (r.int16(),)
        return self.retry(once, "FindCoordinator")[0]

    def init_producer_id(self, transactional_id):
        def once():
            r = self.call(API_INIT_PRODUCER_ID, 1, wire.string_bytes(transactional_id) + struct.pack(">i", 60000))
            r.int32()
            return r.int16(), r.int64(), r.int16()
        return self.retry(once, "InitProducerId")

    def add_partitions_v1(self, transactional_id, pid, epoch, topic, partitions):
        def once():
            body = (wire.string_bytes(transactional_id) + struct.pack(">qh", pid, epoch) + struct.pack(">i", 1)
                    + wire.string_bytes(topic) + struct.pack(">i", len(partitions))
                    + b"".join(struct.pack(">i", p) for p in partitions))
            r = self.call(API_ADD_PARTITIONS, 1, body)
            r.int32()
            results = {}
            for _ in range(r.int32()):
                name = r.string()
                for _ in range(r.int32()):
                    index = r.int32()
                    results[(name, index)] = r.int16()
            codes = set(results.values())
            return (codes.pop() if len(codes) == 1 else -1, results)
        return self.retry(once, "AddPartitionsToTxn")

    def add_partitions_v5(self, transactions):
        """transactions: [(id, pid, epoch, verify_only, topic, [partitions])] -> (top error, {id: {(t, p): code}})"""
        body = wire.uvarint_bytes(len(transactions) + 1)
        for tid, pid, epoch, verify_only, topic, partitions in transactions:
            body += (wire.compact_string_bytes(tid) + struct.pack(">qhb", pid, epoch, 1 if verify_only else 0)
                     + wire.uvarint_bytes(2) + wire.compact_string_bytes(topic)
                     + wire.uvarint_bytes(len(partitions) + 1) + b"".join(struct.pack(">i", p) for p in partitions)
                     + b"\x00" + b"\x00")
        body += b"\x00"
        r = self.call(API_ADD_PARTITIONS, 5, body, flexible=True)
        r.int32()
        top = r.int16()
        out = {}

        def partition():
            index, code = r.int32(), r.int16()
            r.tagged_fields()
            return index, code

        def topic():
            name = r.compact_string()
            parts = r.compact_array(partition) or []
            r.tagged_fields()
            return name, parts

        def result():
            tid = r.compact_string()
            topics = r.compact_array(topic) or []
            r.tagged_fields()
            out[tid] = {(name, index): code for name, parts in topics for index, code in parts}
        r.compact_array(result)
        self.answers.append(["AddPartitionsToTxn v5", top, {tid: sorted(codes.items()) for tid, codes in out.items()}])
        return top, out

    def end_txn(self, transactional_id, pid, epoch, commit):
        def once():
            r = self.call(API_END_TXN, 1, wire.string_bytes(transactional_id) + struct.pack(">qhb", pid, epoch,
                                                                                            1 if commit else 0))
            r.int32()
            return (r.int16(),)
        return self.retry(once, "EndTxn")[0]


def scenario_txn_wire(ctx):
    """The coordinator's requests by hand, AddPartitionsToTxn v1 and the batched v5 included."""
    broker = ctx.broker()
    topic = "tw-events"
    create_topics(broker, [(topic, 3, None)])
    w = TxnWire(broker)
    try:
        check(w.find_coordinator("tw-a") == 0, "FindCoordinator for a transactional id failed")
        err, pid, epoch = w.init_producer_id("tw-a")
        check(err == 0 and pid >= 0 and epoch >= 0, "InitProducerId tw-a: %r" % ((err, pid, epoch),))
        err_b, pid_b, epoch_b = w.init_producer_id("tw-b")
        check(err_b == 0 and pid_b != pid, "InitProducerId tw-b: %r" % ((err_b, pid_b, epoch_b),))
        code, results = w.add_partitions_v1("tw-a", pid, epoch, topic, [0])
        check(code == 0, "AddPartitionsToTxn v1 tw-a %s-0: %r" % (topic, results))
        code, results = w.add_partitions_v1("tw-a", pid, epoch, topic, [1, 9])
        check(results == {(topic, 1): 55, (topic, 9): 3},
              "AddPartitionsToTxn v1 naming partition 9 of 3: %r, want OPERATION_NOT_ATTEMPTED (55) for 1 and "
              "UNKNOWN_TOPIC_OR_PARTITION (3) for 9" % (results,))
        code, results = w.add_partitions_v1("tw-a", pid, epoch + 1, topic, [1])
        check(code in (47, 90), "AddPartitionsToTxn v1 with a newer epoch than the coordinator's: %r, want "
              "INVALID_PRODUCER_EPOCH or PRODUCER_FENCED" % (results,))

        # A broker's batched check: tw-a verifies 0 (added) and 2 (not added);
        # tw-b adds partition 2 for real.
        top, out = w.add_partitions_v5([("tw-a", pid, epoch, True, topic, [0, 2]),
                                        ("tw-b", pid_b, epoch_b, False, topic, [2])])
        check(top == 0, "AddPartitionsToTxn v5: top-level error %d" % top)
        check(out.get("tw-a") == {(topic, 0): 0, (topic, 2): 120},
              "v5 verify-only tw-a: %r, want NONE for the added partition and TRANSACTION_ABORTABLE (120) for "
              "the other" % (out.get("tw-a"),))
        check(out.get("tw-b") == {(topic, 2): 0}, "v5 add tw-b: %r" % (out.get("tw-b"),))
        top, out = w.add_partitions_v5([("tw-b", pid_b, epoch_b, True, topic, [2])])
        check(out.get("tw-b") == {(topic, 2): 0}, "v5 verify-only after the add: %r" % (out,))

        check(w.end_txn("tw-a", pid, epoch, False) == 0, "EndTxn abort tw-a failed")
        check(w.end_txn("tw-b", pid_b, epoch_b, True) == 0, "EndTxn commit tw-b failed")
        # The transaction is over: nothing is in it any more.
        ctx.observe("the coordinator's answers, in order", w.answers)
        # Refused as TRANSACTION_ABORTABLE, or, while the abort's markers are
        # still being written, CONCURRENT_TRANSACTIONS (or INVALID_TXN_STATE).
        top, out = w.add_partitions_v5([("tw-a", pid, epoch, True, topic, [0])])
        ctx.observe("v5 verify-only after the abort: refused", out.get("tw-a", {}).get((topic, 0)) in (120, 51, 48))
        check(out.get("tw-a", {}).get((topic, 0)) in (120, 51, 48),
              "v5 verify-only after the abort: %r, want the partition refused" % (out,))
    finally:
        w.close()
    broker.check_alive()


SCENARIOS = [
    ("txn_commit_abort", scenario_txn_commit_abort),
    ("txn_zombie", scenario_txn_zombie),
    ("txn_timeout", scenario_txn_timeout),
    ("txn_admin", scenario_txn_admin),
    ("txn_wire", scenario_txn_wire),
]
