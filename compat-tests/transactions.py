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

Consumers assign partitions and seek: no group is needed to read.
"""

import logging
import os
import time

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
    check(lso[0] < high[0], "partition 0: read_committed latest offset %d, high watermark %d: the open "
          "transaction's record must be past the last stable offset" % (lso[0], high[0]))
    producer.commit_transaction(30)
    want[0].append("open-0")
    every[0].append("open-0")

    def verify(when):
        committed = read_all(broker, topic, [0, 1], "read_committed", expect=sum(map(len, want.values())))
        check(committed == want, "%s, read_committed: got %r, want %r" % (when, committed, want))
        uncommitted = read_all(broker, topic, [0, 1], "read_uncommitted", expect=sum(map(len, every.values())))
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
        check(err.fatal() or err.txn_requires_abort(), "the zombie's failure is neither fatal nor abortable: %s"
              % err.str())
    committed = read_all(broker, topic, [0, 1], "read_committed", expect=2)
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

    listed = {row[0]: row for row in tool(ctx, broker, "list")[1:]}
    check(set(listed) >= {"tx-done", "tx-open"}, "list shows %r" % sorted(listed))
    check(listed["tx-done"][3] == "CompleteCommit" and listed["tx-open"][3] == "Ongoing",
          "list states: %r" % listed)
    rows = tool(ctx, broker, "describe", "--transactional-id", "tx-open")
    check(len(rows) == 2 and rows[1][1] == "tx-open" and rows[1][4] == "Ongoing" and
          rows[1][-1] == "%s-1" % topic, "describe tx-open: %r" % rows)
    producers = tool(ctx, broker, "describe-producers", "--topic", topic, "--partition", "1")
    starts = [row[5] for row in producers[1:]]
    check(len(producers) == 3 and "None" in starts and any(s.isdigit() for s in starts),
          "describe-producers of partition 1: %r (want the committed producer and the open one with its "
          "transaction's first offset)" % producers)
    open_one.abort_transaction(30)
    broker.check_alive()


SCENARIOS = [
    ("txn_commit_abort", scenario_txn_commit_abort),
    ("txn_zombie", scenario_txn_zombie),
    ("txn_timeout", scenario_txn_timeout),
    ("txn_admin", scenario_txn_admin),
]
