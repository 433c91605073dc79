"""compat-tests/compaction.py - log compaction (cleanup.policy=compact) as a user sees it.

    compaction  confluent-kafka (librdkafka, lz4 batches) writes 20 versions of 300 keys
                (~6 MB) to a compacted topic with 1 MiB segments and a low
                min.cleanable.dirty.ratio, then deletes 30 keys with tombstones; the cleaner
                shrinks the log on its own; kcat reads the latest value of every key, at the
                offset it was written at; the tombstones are still there, then gone once
                delete.retention.ms has passed and the cleaner ran again; a restart reads the
                same; Kafka's DumpLogSegments finds the cleaned segments sound

    compaction_txn  a transactional producer (librdkafka) commits 100 keys, then writes new values
                of the same keys in a transaction it aborts; once the cleaner has run, even a
                read_uncommitted consumer finds no aborted record, read_committed reads the
                committed values at their offsets, and a restart reads the same

    compaction_crash  while the cleaner runs every 100 ms over a compacted topic that keeps
                getting new versions (throttled by log.cleaner.io.max.bytes.per.second, so a
                cleaning takes seconds), the broker is SIGKILLed at random moments, six times;
                after each restart every key reads its latest acknowledged value at its offset
                and no cleaner file (.cleaned, .swap) is left behind

What it asserts is Kafka's behaviour (the cleaner runs every
log.cleaner.backoff.ms, cleans only segments before the active one, keeps
offsets, keeps a tombstone for delete.retention.ms after the cleaning that
first saw it): run it against the reference broker with
RUNNEL=compat-tests/kafka/reference-broker.
"""

import json
import logging
import os
import shutil
import time

from harness import Failure, admin_client, check
from logs import DUMP_TROUBLE, JAVA_TIMEOUT_S, KAFKA_LIB, create_topics, kcat_consume, segment_files

TOPIC = "cp-compacted"
KEYS = 300
ROUNDS = 20
DELETED = 30  # k000..k029 get tombstones
VALUE_BYTES = 1000
DELETE_RETENTION_MS = 4000
CLEAN_DEADLINE_S = 90
BACKOFF_MS = 500


def _confluent():
    try:
        import confluent_kafka
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    return confluent_kafka


def _start_cleaning(broker, topic, configs):
    """The topic was created with min.cleanable.dirty.ratio=1.0, which no log passes, so that
    nothing is cleaned while the test looks at the log as written; this lowers it to 0.01
    (AlterConfigs replaces every override, so all are given)."""
    from kafka.admin import ConfigResource, ConfigResourceType
    admin = admin_client(broker)
    try:
        configs = dict(configs, **{"min.cleanable.dirty.ratio": "0.01"})
        response = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
        check(response.to_object()["resources"][0]["error_code"] == 0, "alter_configs: %r" % response)
    finally:
        admin.close()


def _key(k):
    return "k%03d" % k


def _value(round_, k):
    """Random hex: lz4 cannot shrink it much, so the log grows past its 1 MiB segments."""
    head = "r%02d-%s-" % (round_, _key(k))
    return head + os.urandom(VALUE_BYTES // 2).hex()[:VALUE_BYTES - len(head)]


def _delivery_recorder():
    """(acked {(key, value or None): offset}, errors [text], the on_delivery callback filling them)."""
    acked = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            v = msg.value()
            acked[(msg.key().decode(), None if v is None else v.decode())] = msg.offset()
    return acked, errors, on_delivery


def _produce(ck, broker, items):
    """items: [(key, value or None)]; returns {(key, value): offset} as the broker acknowledged them."""
    acked, errors, on_delivery = _delivery_recorder()

    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "linger.ms": 5,
                     "acks": "all", "logger": logging.getLogger("confluent_kafka")})
    for i, (key, value) in enumerate(items):
        for _ in range(1000):
            try:
                p.produce(TOPIC, key=key.encode(), value=None if value is None else value.encode(),
                          partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    check(left == 0 and not errors, "producer: %d not delivered, errors %r" % (left, errors[:5]))
    check(len(acked) == len(items), "%d acknowledged of %d" % (len(acked), len(items)))
    return acked


def _log_bytes(broker):
    return sum(os.path.getsize(f) for f in segment_files(broker, TOPIC, 0, ".log"))


def _read(ctx, broker):
    """[(offset, key, value)] from the beginning, as kcat shows them."""
    records = kcat_consume(ctx, broker, TOPIC, [0], timeout_s=120)[0]
    return [(r["offset"], r.get("key"), r.get("payload")) for r in records]


def _latest(records):
    last = {}
    for offset, key, value in records:
        last[key] = (offset, value)
    return last


def _filler(round_):
    """One more version of every key not deleted: about 270 KB."""
    return [(_key(k), _value(round_, k)) for k in range(DELETED, KEYS)]


def _dump_log(ctx, files):
    """DumpLogSegments --deep-iteration: every batch valid, every index entry right. Offsets are
    not consecutive in a compacted log (Kafka's own neither), so that report is not trouble."""
    java = shutil.which("java")
    argv = [java, "-Xmx512m", "-cp", os.path.join(KAFKA_LIB, "*"), "org.apache.kafka.tools.DumpLogSegments",
            "--deep-iteration", "--files", ",".join(files)]
    code, out, err = ctx.run(argv, timeout_s=JAVA_TIMEOUT_S, check_exit=False)
    said = [line for line in out.splitlines() + err.splitlines()
            if not line.startswith("| ") and not line.startswith("Non-consecutive offsets")
            and " is followed by " not in line]
    trouble = [line for line in said if any(t in line for t in DUMP_TROUBLE)]
    batches = [line for line in out.splitlines() if line.startswith("baseOffset: ")]
    check(code == 0 and not trouble and batches, "DumpLogSegments: exit %d, %d batches, and it said:\n      %s"
          % (code, len(batches), "\n      ".join(trouble[:20] or err.strip().splitlines()[:20])))
    return len(batches)


def scenario_compaction(ctx):
    ck = _confluent()
    broker = ctx.broker(overrides=["log.cleaner.backoff.ms=%d" % BACKOFF_MS])
    configs = {"cleanup.policy": "compact", "segment.bytes": "1048576",
               "delete.retention.ms": str(DELETE_RETENTION_MS)}
    create_topics(broker, [(TOPIC, 1, dict(configs, **{"min.cleanable.dirty.ratio": "1.0"}))])

    # 1. Many versions of every key, then tombstones, then enough newer
    #    data that the tombstones' segment is rolled (only segments before
    #    the active one are cleaned).
    items = [(_key(k), _value(r, k)) for r in range(ROUNDS) for k in range(KEYS)]
    items += [(_key(k), None) for k in range(DELETED)]
    next_round = ROUNDS
    for _ in range(5):
        items += _filler(next_round)
        next_round += 1
    acked = _produce(ck, broker, items)
    produced_bytes = _log_bytes(broker)
    want = {}
    for key, value in items:
        want[key] = (acked[(key, value)], value)
    ctx.note("produced", "%d records, %d bytes of .log" % (len(items), produced_bytes))
    _start_cleaning(broker, TOPIC, configs)

    # 2. The cleaner runs on its own and shrinks the log.
    deadline = time.monotonic() + CLEAN_DEADLINE_S
    while _log_bytes(broker) > produced_bytes // 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    cleaned_bytes = _log_bytes(broker)
    check(cleaned_bytes <= produced_bytes // 2, "the log still holds %d bytes of %d after %d s: not cleaned"
          % (cleaned_bytes, produced_bytes, CLEAN_DEADLINE_S))
    ctx.say("log bytes before cleaning %d, after %d" % (produced_bytes, cleaned_bytes))

    # 3. The latest version of every key, at the offset it was written at.
    records = _read(ctx, broker)
    check(len(records) < len(items), "%d records read of %d produced: nothing removed" % (len(records), len(items)))
    offsets = [o for o, _, _ in records]
    check(offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets out of order or repeated")
    got = _latest(records)
    for key, (offset, value) in want.items():
        if value is None:
            continue  # a tombstone: checked below
        check(got.get(key) == (offset, value), "%s: read %r, want offset %d value %r..."
              % (key, (got.get(key) or (None, None))[0], offset, value[:12]))
    for offset, key, value in records:
        check(key in want, "a record with key %r nobody wrote" % key)
    ctx.say("read back: %d records of %d produced" % (len(records), len(items)))

    # 4. Deleted keys: the value before the tombstone never comes back;
    #    the tombstone itself goes once delete.retention.ms has passed and
    #    the cleaner ran again (over new dirty segments).
    for k in range(DELETED):
        latest = got.get(_key(k))
        check(latest is None or latest[1] is None, "%s was deleted but reads %r" % (_key(k), latest))
    time.sleep(DELETE_RETENTION_MS / 1000.0 + 0.5)
    gone_deadline = time.monotonic() + CLEAN_DEADLINE_S
    rounds = 0
    while True:
        extra = []
        for _ in range(5):
            extra += _filler(next_round)
            next_round += 1
        more = _produce(ck, broker, extra)
        for key, value in extra:
            want[key] = (more[(key, value)], value)
        rounds += 1
        time.sleep(2)
        records = _read(ctx, broker)
        left = [r for r in records if r[1] in {_key(k) for k in range(DELETED)}]
        if not left:
            break
        check(time.monotonic() < gone_deadline, "tombstones still there %d s after delete.retention.ms: %r"
              % (CLEAN_DEADLINE_S, left[:3]))
    got = _latest(records)
    for key, (offset, value) in want.items():
        if value is not None:
            check(got.get(key) == (offset, value), "%s after the tombstones went: read %r, want offset %d"
                  % (key, (got.get(key) or (None, None))[0], offset))
    ctx.say("tombstones gone after %d more round(s) of writes" % rounds)

    # 5. A restart reads the same log.
    before = records
    broker.stop()
    check(not broker.problems, "; ".join(broker.problems))
    broker.start()
    after = _read(ctx, broker)
    check(after == before, "after a restart %d records, %d before (first difference: %r)"
          % (len(after), len(before), next(((a, b) for a, b in zip(after, before) if a != b), None)))

    # 6. Kafka's DumpLogSegments reads the cleaned segments and finds them sound.
    broker.stop()
    if os.path.isfile(os.path.join(KAFKA_LIB, "kafka-tools-4.4.0.jar")) and shutil.which("java"):
        files = segment_files(broker, TOPIC, 0, ".log")
        batches = _dump_log(ctx, files + segment_files(broker, TOPIC, 0, ".index")
                            + segment_files(broker, TOPIC, 0, ".timeindex"))
        ctx.say("DumpLogSegments --deep-iteration: %d segments, %d batches, nothing wrong" % (len(files), batches))
    else:
        ctx.skip_check("no java or Kafka jars in %s: DumpLogSegments did not read the cleaned log" % KAFKA_LIB)
    broker.start()
    broker.check_alive()


def _kcat_read(ctx, broker, topic, isolation):
    """[(offset, key, value)] of partition 0 from the beginning, at the given isolation level."""
    argv = ["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J", "-q",
            "-X", "isolation.level=" + isolation]
    _, stdout, _ = ctx.run(argv, timeout_s=120)
    out = []
    for line in stdout.splitlines():
        if line.strip():
            r = json.loads(line)
            out.append((r["offset"], r.get("key"), r.get("payload")))
    return out


def scenario_compaction_txn(ctx):
    ck = _confluent()
    topic = "cp-txn"
    broker = ctx.broker(overrides=["log.cleaner.backoff.ms=%d" % BACKOFF_MS])
    configs = {"cleanup.policy": "compact", "segment.bytes": "1048576"}
    create_topics(broker, [(topic, 1, dict(configs, **{"min.cleanable.dirty.ratio": "1.0"}))])
    acked, errors, on_delivery = _delivery_recorder()

    p = ck.Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cp-txn-producer",
                     "linger.ms": 5, "transaction.timeout.ms": 60000, "logger": logging.getLogger("confluent_kafka")})
    p.init_transactions(30)
    committed = {"t%03d" % k: "committed-" + os.urandom(VALUE_BYTES // 2).hex() for k in range(100)}
    aborted = {"t%03d" % k: "aborted-" + os.urandom(VALUE_BYTES // 2).hex() for k in range(100)}
    for values, is_commit in ((committed, True), (aborted, False)):
        p.begin_transaction()
        for key, value in values.items():
            p.produce(topic, key=key.encode(), value=value.encode(), partition=0, on_delivery=on_delivery)
        p.flush(60)
        if is_commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    # Plain records after them, enough to roll their segment.
    filler = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all",
                          "logger": logging.getLogger("confluent_kafka")})
    for r in range(5):
        for k in range(300):
            filler.produce(topic, key=("f%03d" % k).encode(), value=os.urandom(VALUE_BYTES // 2).hex().encode(),
                           partition=0)
            if k % 100 == 0:
                filler.poll(0)
    check(filler.flush(60) == 0 and not errors, "producers: %r" % errors[:5])
    check(all((k, v) in acked for k, v in committed.items()), "not every committed record was acknowledged")
    before = _kcat_read(ctx, broker, topic, "read_uncommitted")
    aborted_acked = sum(1 for k, v in aborted.items() if (k, v) in acked)
    aborted_read = sum(1 for _, _, v in before if v and v.startswith("aborted-"))
    check(aborted_read > 0, "the aborted records are in the log at first: %d of %d acknowledged, %d read of %d "
          "records (offsets %r...%r)" % (aborted_acked, len(aborted), aborted_read, len(before),
                                        [o for o, _, _ in before[:3]], [o for o, _, _ in before[-3:]]))
    _start_cleaning(broker, topic, configs)

    # The cleaner removes the aborted transaction's records from the log.
    deadline = time.monotonic() + CLEAN_DEADLINE_S
    while True:
        records = _kcat_read(ctx, broker, topic, "read_uncommitted")
        if not any(v and v.startswith("aborted-") for _, _, v in records):
            break
        check(time.monotonic() < deadline, "aborted records still in the log after %d s" % CLEAN_DEADLINE_S)
        time.sleep(1)
    ctx.say("read_uncommitted: %d records before cleaning, %d after" % (len(before), len(records)))

    def check_committed(what):
        got = _latest(_kcat_read(ctx, broker, topic, "read_committed"))
        for key, value in committed.items():
            check(got.get(key) == (acked[(key, value)], value), "%s: %s reads %r, want the committed value at %d"
                  % (what, key, (got.get(key) or (None, ""))[1][:12], acked[(key, value)]))
        return got

    check_committed("after cleaning")
    broker.stop()
    check(not broker.problems, "; ".join(broker.problems))
    broker.start()
    check_committed("after a restart")
    after = _kcat_read(ctx, broker, topic, "read_uncommitted")
    check(not any(v and v.startswith("aborted-") for _, _, v in after), "aborted records back after a restart")
    broker.check_alive()


CRASH_ROUNDS = 6
CRASH_KEYS = 200


def scenario_compaction_crash(ctx):
    import random
    ck = _confluent()
    topic = "cp-crash"
    seed = int(os.environ.get("RUNNEL_CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    ctx.say("seed %d (RUNNEL_CRASH_SEED replays it)" % seed)
    # Throttled, so that a cleaning takes seconds and the kills land inside some.
    broker = ctx.broker(overrides=["log.cleaner.backoff.ms=100", "log.cleaner.io.max.bytes.per.second=1000000"])
    create_topics(broker, [(topic, 1, {"cleanup.policy": "compact", "segment.bytes": "1048576",
                                      "min.cleanable.dirty.ratio": "0.01"})])
    latest = {}  # key -> (offset, value) of its last acknowledged version
    version = 0
    for round_ in range(CRASH_ROUNDS):
        items = []
        for _ in range(3):
            items += [("c%03d" % k, "v%05d-" % version + os.urandom(VALUE_BYTES // 2).hex()) for k in range(CRASH_KEYS)]
            version += 1
        acked, errors, on_delivery = _delivery_recorder()
        p = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all",
                         "compression.type": "lz4", "logger": logging.getLogger("confluent_kafka")})
        for key, value in items:
            p.produce(topic, key=key.encode(), value=value.encode(), partition=0, on_delivery=on_delivery)
            p.poll(0)
        check(p.flush(60) == 0 and not errors, "round %d: producer errors %r" % (round_, errors[:3]))
        for key, value in items:
            offset = acked[(key, value)]
            if key not in latest or offset > latest[key][0]:
                latest[key] = (offset, value)
        time.sleep(rng.uniform(0.2, 3.0))  # the cleaner runs meanwhile, maybe mid-swap at the kill
        broker.kill()
        broker.start()
        got = _latest(_kcat_read(ctx, broker, topic, "read_committed"))
        for key, want in latest.items():
            check(got.get(key) == want, "round %d, after a SIGKILL: %s reads offset %r, want %d"
                  % (round_, key, (got.get(key) or (None,))[0], want[0]))
    # A last clean stop: the restart has finished or dropped every interrupted cleaning.
    broker.stop()
    d = os.path.join(broker.data_dir, "%s-0" % topic)
    left = [f for f in os.listdir(d) if f.endswith(".cleaned") or f.endswith(".swap")]
    check(not left, "cleaner files left behind: %r" % left)
    ctx.say("log bytes at the end %d for %d versions of %d keys" % (_log_bytes_of(d), version, CRASH_KEYS))
    said = ""
    for run in broker.runs:
        with open(run[2], "r", errors="replace") as f:
            said += f.read()
    ctx.say("runnel's log lines (none from another broker): %d cleanings finished, %d interrupted files "
            "dropped, %d interrupted swaps finished"
            % (said.count(": cleaned offsets "), said.count("left by an interrupted cleaning"),
               said.count("interrupted cleaner swap")))
    broker.start()
    broker.check_alive()


def _log_bytes_of(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))


SCENARIOS = [
    ("compaction", scenario_compaction),
    ("compaction_txn", scenario_compaction_txn),
    ("compaction_crash", scenario_compaction_crash),
]
