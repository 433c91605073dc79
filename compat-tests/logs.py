"""compat-tests/logs.py - what producers write comes back, survives, and is Kafka's format.

The log's stories, told with real clients against one broker each:

    kcat_codecs           kcat writes 100,000 keyed records with headers under each codec
                          and reads every partition back, identical and in order
    kafka_python_produce  kafka-python (acks=all, every codec it has) writes, reads back by
                          assign/seek; offsets contiguous and as acknowledged
    kafkajs_produce       kafkajs (acks -1, none and gzip) writes; kafka-python and kcat read
    cross_codec           each client reads batches another client compressed
    log_restart           the log survives SIGTERM and a restart; offsets continue
    crash_recovery        librdkafka produces acks=all while the broker is SIGKILLed, in rounds,
                          by turns plain and idempotent; every acknowledged record is there,
                          once, at its offset, in order; every batch on disk passes its CRC
    list_offsets_time     ListOffsets by timestamp, earliest, latest and max timestamp
    long_poll             a waiting Fetch answers when data arrives, or after max_wait_ms
    dump_log              Kafka's own DumpLogSegments reads the segments and finds nothing wrong

No consumer groups are used: consumers assign partitions and seek, so these
stories need only Produce, Fetch, ListOffsets and Metadata. kafkajs consumes
only through a group, so what it writes is read with kafka-python and kcat.
No producer is idempotent (kafkajs and librdkafka are told so; kafka-python
2.0.2 cannot be), so where a story checks order per partition its producers
keep one request in flight.

Some checks read the broker's data directory: the segments are Kafka's
format (`<log.dirs>/<topic>-<partition>/<20-digit base offset>.log`), so the
batch headers there say which codec each client really used, for runnel and
for the reference Kafka alike.

Environment: RUNNEL_KCAT_MESSAGES (records per codec in kcat_codecs, default
100000), RUNNEL_CRASH_ROUNDS (default 20; make crash-test runs 100),
RUNNEL_CRASH_ACKS_MIN / _MAX (the kill comes after this many acks in a
round, default 200-3000), RUNNEL_CRASH_VERBOSE (a line per round),
RUNNEL_CRASH_SEED (replays a crash_recovery run; each run prints its seed on
failure), KAFKA_LIB (the Apache Kafka jars for dump_log and crash_recovery,
default build/kafka-lib).
"""

import json
import logging
import os
import random
import re
import shutil
import socket
import string
import time
import zlib

import wire
from harness import (BROKER_ID, CLIENT_TIMEOUT_S, HERE, REPO, Failure, admin_client, check,
                     eventually, kafka_python, records_summary)

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
KCAT_MESSAGES = int(os.environ.get("RUNNEL_KCAT_MESSAGES", "100000"))
CRASH_ROUNDS = int(os.environ.get("RUNNEL_CRASH_ROUNDS", "20"))
# The broker dies after this many acks in a round.
CRASH_ACKS_MIN = int(os.environ.get("RUNNEL_CRASH_ACKS_MIN", "200"))
CRASH_ACKS_MAX = int(os.environ.get("RUNNEL_CRASH_ACKS_MAX", "3000"))
CRASH_IN_FLIGHT = 5000
CRASH_ROUND_S = 20  # at most this long to reach them, and for an idempotent producer to catch up
CRASH_VERBOSE = os.environ.get("RUNNEL_CRASH_VERBOSE", "") not in ("", "0")
KAFKA_LIB = os.environ.get("KAFKA_LIB", os.path.join(REPO, "build", "kafka-lib"))
JAVA_TIMEOUT_S = 120


# ---------------------------------------------------------------------------
# Helpers: topics, records as each client shows them, the segments on disk.


def create_topics(broker, topics):
    """topics: [(name, partitions, {config: value})]; returns once every partition has a leader."""
    kafka_python()
    from kafka.admin import NewTopic
    admin = admin_client(broker)
    try:
        response = admin.create_topics([NewTopic(name, count, 1, topic_configs=dict(configs or {}))
                                        for name, count, configs in topics])
        errors = [tuple(e) for e in response.topic_errors if e[1] != 0]
        check(not errors, "create_topics answered errors: %r" % (errors,))

        def led():
            found = {t["topic"]: t for t in admin.describe_topics([name for name, _, _ in topics])}
            for name, count, _ in topics:
                t = found.get(name)
                if not t or t["error_code"] != 0 or len(t["partitions"]) != count:
                    return False
                if any(p["leader"] != BROKER_ID for p in t["partitions"]):
                    return False
            return True

        eventually(led, "every partition of %s has leader %d" % ([t[0] for t in topics], BROKER_ID),
                   timeout_s=20)
    finally:
        admin.close()


def first_difference(what, got, want, describe=repr):
    """Fails with the first record where got and want (lists) differ."""
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise Failure("%s: record %d of %d differs\n      got:  %s\n      want: %s"
                          % (what, i, len(want), describe(g), describe(w)))
    raise Failure("%s: %d records, want %d (first %s: %s)"
                  % (what, len(got), len(want), "extra" if len(got) > len(want) else "missing",
                     describe(got[len(want)] if len(got) > len(want) else want[len(got)])))


def text(raw):
    return None if raw is None else raw.decode("utf-8")


def kcat_consume(ctx, broker, topic, partitions, timeout_s=CLIENT_TIMEOUT_S):
    """Reads each partition from the beginning to its end, one `kcat -C -p N -e -J` each, side by side.

    Returns {partition: [kcat's JSON record]} (keys: offset, tstype, ts,
    headers [name, value, ...], key, payload).
    """
    argvs = [["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-p", str(p), "-o", "beginning",
              "-e", "-J", "-q"] for p in partitions]
    out = {}
    for p, (_, stdout, _) in zip(partitions, ctx.run_parallel(argvs, timeout_s=timeout_s)):
        records = []
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise Failure("kcat -C -p %d printed a line that is not JSON (%s): %r" % (p, e, line[:200]))
            check(r.get("topic") == topic and r.get("partition") == p,
                  "kcat -C -t %s -p %d printed a record of %s/%s" % (topic, p, r.get("topic"), r.get("partition")))
            records.append(r)
        out[p] = records
    return out


def kcat_observed(records):
    """kcat -J records as observed: offset, key, value, headers; not the
    timestamps, which are the moment each was produced."""
    return records_summary([r["offset"], r.get("key"), r.get("payload"), r.get("headers") or []] for r in records)


def kp_observed(records):
    """kafka-python ConsumerRecords as observed (offset, key, value, headers, timestamp type)."""
    return records_summary([r.offset, r.key, r.value, list(r.headers), r.timestamp_type] for r in records)


def kcat_record(r):
    """A kcat -J record as (key, value, ((header, value), ...))."""
    h = r.get("headers") or []
    return (r.get("key"), r.get("payload"), tuple(zip(h[0::2], h[1::2])))


def check_offsets_contiguous(what, offsets, start=0):
    want = list(range(start, start + len(offsets)))
    if offsets != want:
        bad = next(i for i, (g, w) in enumerate(zip(offsets, want)) if g != w)
        raise Failure("%s: offsets not contiguous from %d: position %d holds offset %d (then %r)"
                      % (what, start, bad, offsets[bad], offsets[bad + 1:bad + 4]))


def segment_files(broker, topic, partition, suffix):
    d = os.path.join(broker.data_dir, "%s-%d" % (topic, partition))
    check(os.path.isdir(d), "no partition directory %s (data dir holds %r)"
          % (d, sorted(os.listdir(broker.data_dir))))
    return [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(suffix)]


def disk_batches(broker, topic, partition):
    """Every batch header in the partition's .log files, in offset order."""
    batches = []
    for path in segment_files(broker, topic, partition, ".log"):
        with open(path, "rb") as f:
            buf = f.read()
        try:
            found = wire.record_batches(buf)
        except wire.WireError as e:
            raise Failure("%s: %s" % (path, e))
        for b in found:
            check("partial" not in b, "%s ends with %d bytes that are not a whole batch (from byte %d)"
                  % (path, b.get("partial", 0), b["position"]))
            b["file"] = os.path.basename(path)
            batches.append(b)
    return batches


def check_log_crc(broker, topic, partition, verified=None):
    """Reads every .log file of the partition as Kafka's recovery would and
    checks each batch: whole, magic 2, CRC-32C right, offsets contiguous
    from the first segment's base to the log end. Returns (batch count,
    next offset).

    CRC-32C in Python reads about 10 MB/s; verified ({(path, position,
    size, stored crc): zlib.crc32 of the bytes}, kept by the caller across
    calls) lets a batch already checked be matched with zlib's C CRC-32
    instead, so that checking a growing log again and again stays cheap
    and still reads every byte."""
    verified = {} if verified is None else verified
    count = 0
    next_offset = None
    for path in segment_files(broker, topic, partition, ".log"):
        with open(path, "rb") as f:
            buf = f.read()
        name = os.path.basename(path)
        base = int(name.split(".")[0])
        if next_offset is None:
            next_offset = base
        check(base == next_offset, "%s: segment starts at %d, the one before ends at %d" % (path, base, next_offset))
        try:
            found = wire.record_batches(buf)
        except wire.WireError as e:
            raise Failure("%s: %s" % (path, e))
        for b in found:
            check("partial" not in b, "%s ends with %d bytes that are not a whole batch (from byte %d)"
                  % (path, b.get("partial", 0), b["position"]))
            at = "%s batch at byte %d (offsets %d-%d)" % (path, b["position"], b["base_offset"], b["last_offset"])
            check(b["base_offset"] == next_offset, "%s: want base offset %d" % (at, next_offset))
            check(b["last_offset"] >= b["base_offset"], "%s: last offset below the base" % at)
            raw = buf[b["position"]:b["position"] + b["size"]]
            key = (path, b["position"], b["size"], b["crc"])
            quick = zlib.crc32(raw)
            if verified.get(key) != quick:
                got = wire.crc32c(raw[wire.BATCH_CRC_FROM:])
                check(got == b["crc"], "%s: CRC-32C %08x, the batch says %08x" % (at, got, b["crc"]))
                verified[key] = quick
            next_offset = b["last_offset"] + 1
            count += 1
    return count, next_offset


def runs(items):
    """[a, a, b, a] -> [a, b, a]."""
    out = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def check_disk(broker, topic, partition, codecs, codec_problems=None):
    """The partition's segments hold len(codecs) records from offset 0, each in
    a batch compressed with codecs[offset] (what its producer was asked for)
    or not at all; returns the batches.

    A producer may leave a batch uncompressed when compressing does not make
    it smaller (librdkafka does, for one-record batches), so a codec counts
    as used when at least half the records asked for it got it. A codec
    difference goes to codec_problems when given, so the scenario can check
    the records first and report every codec difference at its end.
    """
    what = "%s-%d on disk" % (topic, partition)
    batches = disk_batches(broker, topic, partition)
    check(batches, "%s: no batches" % what)
    next_offset = 0
    asked, got = {}, {}
    problems = []
    for b in batches:
        check(b["base_offset"] == next_offset,
              "%s: batch at %s byte %d starts at offset %d, want %d"
              % (what, b["file"], b["position"], b["base_offset"], next_offset))
        check(b["count"] == b["last_offset"] - b["base_offset"] + 1,
              "%s: batch at offset %d has %d records for offsets %d-%d"
              % (what, b["base_offset"], b["count"], b["base_offset"], b["last_offset"]))
        next_offset = b["last_offset"] + 1
        wanted = set(codecs[b["base_offset"]:next_offset])
        if len(wanted) == 1 and b["codec"] in wanted | {"none"}:
            codec = wanted.pop()
            asked[codec] = asked.get(codec, 0) + b["count"]
            if b["codec"] == codec:
                got[codec] = got.get(codec, 0) + b["count"]
        else:
            problems.append("%s: batch at offset %d is %s, its records were asked for %s"
                            % (what, b["base_offset"], b["codec"], "/".join(sorted(wanted))))
    check(next_offset == len(codecs), "%s: batches end at offset %d, want %d" % (what, next_offset, len(codecs)))
    for codec in sorted(asked):
        if codec != "none" and got.get(codec, 0) * 2 < asked[codec]:
            problems.append("%s: %d of %d records asked for %s were stored %s"
                            % (what, asked[codec] - got.get(codec, 0), asked[codec], codec,
                               "uncompressed" if not got.get(codec) else "otherwise"))
    if problems and codec_problems is None:
        raise Failure("\n      ".join(problems) + CODEC_HINT)
    if codec_problems is not None:
        codec_problems += problems
    return batches


# librdkafka 2.0.2 enables a codec only for brokers whose ApiVersions has
# certain single versions (rd_kafka_feature_map, src/rdkafka_feature.c):
# LZ4 needs FindCoordinator v0, ZSTD Produce v7 and Fetch v10; and gzip,
# snappy and lz4 need Produce v0 (KAFKA-18659). Otherwise it sends the batch
# uncompressed and says so only under `-X debug=feature,msg`.
CODEC_HINT = ("\n      (librdkafka 2.0.2 silently sends uncompressed batches when ApiVersions lacks "
              "FindCoordinator v0 for lz4, Produce v7 + Fetch v10 for zstd, Produce v0 for "
              "gzip/snappy/lz4; `kcat -X debug=feature,msg` says which)")


def check_codecs(problems):
    check(not problems, "the records read back right, but not every batch was stored with the codec its "
          "producer was asked for:\n      " + "\n      ".join(problems) + CODEC_HINT)


# kafka-python 2.0.2


def kp_producer(broker, **config):
    kafka = kafka_python()
    # One DEBUG line per record sent is noise in a failure report.
    logging.getLogger("kafka.producer.kafka").setLevel(logging.INFO)
    settings = dict(bootstrap_servers=broker.bootstrap, client_id="runnel-compat-kafka-python",
                    acks="all", request_timeout_ms=15000, max_block_ms=15000,
                    api_version_auto_timeout_ms=10000)
    settings.update(config)
    return kafka.KafkaProducer(**settings)


def kp_codecs():
    """The codecs kafka-python can use here: all five once python3-lz4/-snappy/-zstandard are in."""
    from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
    have = {"none": True, "gzip": has_gzip(), "snappy": has_snappy(), "lz4": has_lz4(), "zstd": has_zstd()}
    missing = [c for c in CODECS if not have[c]]
    check(not missing, "kafka-python lacks codecs %s (bash tools/deps.sh test installs python3-lz4, "
          "python3-snappy, python3-zstandard)" % missing)
    return list(CODECS)


def kp_send(producer, topic, messages, timeout_s=30):
    """Sends [{"key", "value", "headers", "partition", "timestamp_ms"}] in order, flushes, and
    returns each one's RecordMetadata (partition, offset) as acknowledged."""
    futures = [producer.send(topic, key=m["key"], value=m["value"], headers=list(m["headers"]),
                             partition=m.get("partition"), timestamp_ms=m.get("timestamp_ms"))
               for m in messages]
    producer.flush(timeout=timeout_s)
    out = []
    for i, f in enumerate(futures):
        try:
            out.append(f.get(timeout=timeout_s))
        except Exception as e:  # noqa: BLE001 - the client's own error is the report
            raise Failure("kafka-python send of record %d to %s failed: %s: %s" % (i, topic, type(e).__name__, e))
    return out


def kp_consume(broker, topic, partitions, timeout_s=30):
    """kafka-python without a group: assign, seek to the beginning, poll to the end offsets.

    Returns {partition: [ConsumerRecord]}.
    """
    kafka = kafka_python()
    from kafka import TopicPartition
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, client_id="runnel-compat-kafka-python",
                                   group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                   fetch_max_wait_ms=200, max_poll_records=5000,
                                   api_version_auto_timeout_ms=10000, request_timeout_ms=30000)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out = {p: [] for p in partitions}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise Failure("kafka-python consumer of %s: positions %r after %d s, end offsets %r"
                              % (topic, {tp.partition: consumer.position(tp) for tp in tps}, timeout_s,
                                 {tp.partition: ends[tp] for tp in tps}))
            for tp, records in consumer.poll(timeout_ms=500).items():
                out[tp.partition].extend(records)
        return out
    finally:
        consumer.close()


def kp_record(r):
    """A kafka-python ConsumerRecord as (key, value, ((header, value), ...)), text where text."""
    return (text(r.key), text(r.value), tuple((k, text(v)) for k, v in r.headers))


# The records kcat writes: keys, values and headers of text (kcat -P reads lines).

VALUE_POOL = None


def value_pool():
    """64 KiB of text to cut values from: words (compressible) and noise (not)."""
    global VALUE_POOL
    if VALUE_POOL is None:
        rng = random.Random(4242)
        words = ["order", "customer", "amount", "EUR", "shipped", "pending", "warehouse", "naive",
                 "id", "ok", "retry", "north", "south", "user", "event", "checkout"]
        noise = string.ascii_letters + string.digits + " .,:;-_=+/#@!?()[]{}"
        parts = []
        while sum(len(p) for p in parts) < 65536:
            if rng.random() < 0.7:
                parts.append(rng.choice(words) + " ")
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randrange(1, 12))))
        VALUE_POOL = "".join(parts)
    return VALUE_POOL


# Header sets, each used for a quarter of a kcat run's records (kcat -H
# applies to every record of one run): none at all, one, three with an
# empty value, and a repeated name with non-ASCII text.
KCAT_HEADER_SETS = (
    (),
    (("codec", "{codec}"),),
    (("codec", "{codec}"), ("trace-id", "t-{codec}-42"), ("empty", "")),
    (("dup", "1"), ("dup", "2"), ("text", "naïve ✓ ünïcødé")),
)


def kcat_messages(label, count, seed):
    """[(key, value, headers)] for kcat -P -K '|': unique keys, values of 0-400 characters."""
    pool = value_pool()
    rng = random.Random(seed)
    sizes = (0, 1, 7, 30, 60, 90, 150, 400)
    out = []
    for i in range(count):
        size = rng.choice(sizes)
        start = rng.randrange(0, len(pool) - size)
        headers = tuple((k, v.format(codec=label)) for k, v in KCAT_HEADER_SETS[i * len(KCAT_HEADER_SETS) // count])
        out.append(("%s-%07d" % (label, i), "%d %s" % (i, pool[start:start + size]), headers))
    return out


def librdkafka_partition(key, partition_count):
    """librdkafka's default partitioner for a keyed record (consistent_random: CRC-32 of the key)."""
    return zlib.crc32(key.encode("utf-8")) % partition_count


def kcat_produce(ctx, broker, jobs, extra=()):
    """Runs one `kcat -P` per job side by side; a job is (topic, codec, [(key, value, headers)]),
    its records sharing their headers. Runs consecutive records with the same
    headers as one kcat each, in order, so a partition keeps the order given."""
    def chunks(messages):
        start = 0
        while start < len(messages):
            end = start
            while end < len(messages) and messages[end][2] == messages[start][2]:
                end += 1
            yield messages[start:end]
            start = end

    per_job = [list(chunks(m)) for _, _, m in jobs]
    for step in range(max(len(c) for c in per_job)):
        argvs = []
        for (topic, codec, _), job_chunks in zip(jobs, per_job):
            if step >= len(job_chunks):
                continue
            chunk = job_chunks[step]
            path = ctx.path("kcat-%s-%s-%d.in" % (topic, codec, step))
            with open(path, "w", encoding="utf-8") as f:
                for key, value, _ in chunk:
                    assert "|" not in key and "\n" not in value
                    f.write("%s|%s\n" % (key, value))
            # One request in flight per connection: without idempotence that is
            # what keeps a partition in the order given when a request is retried
            # (Kafka may refuse the first produce to a topic just created).
            argv = ["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K", "|", "-z", codec,
                    "-X", "acks=all", "-X", "max.in.flight=1", "-l", path] + list(extra)
            for name, value in chunk[0][2]:
                argv += ["-H", "%s=%s" % (name, value)]
            argvs.append(argv)
        for argv, (code, _, err) in zip(argvs, ctx.run_parallel(argvs)):
            check("Delivery failed" not in err and "ERROR" not in err,
                  "%s reported delivery failures: %s" % (" ".join(argv[:8]), err.strip()[:500]))


def check_kcat_partitions(what, consumed, messages, partition_count, window_ms=None):
    """consumed {p: kcat records} holds exactly messages, placed by librdkafka's
    partitioner, in the order they were given, from offset 0, as CreateTime."""
    want = {p: [] for p in range(partition_count)}
    for m in messages:
        want[librdkafka_partition(m[0], partition_count)].append(m)
    for p in range(partition_count):
        records = consumed[p]
        check(want[p], "%s: the key set sends nothing to partition %d; pick more records" % (what, p))
        check_offsets_contiguous("%s partition %d" % (what, p), [r["offset"] for r in records])
        first_difference("%s partition %d" % (what, p), [kcat_record(r) for r in records], want[p])
        for r in records:
            check(r.get("tstype") == "create", "%s partition %d offset %d: timestamp type %r, want create"
                  % (what, p, r["offset"], r.get("tstype")))
            if window_ms:
                check(window_ms[0] <= r["ts"] <= window_ms[1],
                      "%s partition %d offset %d: timestamp %d outside the produce window %r"
                      % (what, p, r["offset"], r["ts"], window_ms))
    return want


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------
# Scenarios


def scenario_kcat_codecs(ctx):
    """kcat writes 100,000 keyed records with headers per codec, 3 partitions; reads them back."""
    broker = ctx.broker()
    count = KCAT_MESSAGES
    create_topics(broker, [("kc-%s" % c, 3, None) for c in CODECS])
    messages = {c: kcat_messages(c, count, seed=11 + i) for i, c in enumerate(CODECS)}
    started_ms = now_ms() - 1000
    kcat_produce(ctx, broker, [("kc-%s" % c, c, messages[c]) for c in CODECS])
    window_ms = (started_ms, now_ms() + 1000)
    codec_problems = []
    for c in CODECS:
        topic = "kc-%s" % c
        consumed = kcat_consume(ctx, broker, topic, [0, 1, 2])
        ctx.observe("%s read back by kcat" % topic, {p: kcat_observed(consumed[p]) for p in range(3)})
        want = check_kcat_partitions(topic, consumed, messages[c], 3, window_ms)
        for p in range(3):
            batches = check_disk(broker, topic, p, [c] * len(want[p]), codec_problems)
            check(len(batches) > 1, "%s-%d: %d records in one batch; the story wants several" % (topic, p, count))
        del consumed, want
    ctx.say("%d records per codec, %d in all" % (count, count * len(CODECS)))
    broker.check_alive()
    check_codecs(codec_problems)


def kp_story_messages(label, count, partition_count, base_ms, seed):
    """kafka-python's records: bytes keys (a few null), values (a few null, some binary),
    headers (a quarter none), explicit timestamps, a fifth with an explicit partition."""
    rng = random.Random(seed)
    pool = value_pool().encode("utf-8")
    out = []
    for i in range(count):
        key = None if i % 50 == 49 else ("kp-%s-%05d" % (label, i)).encode()
        if i % 40 == 39 and key is not None:
            value = None
        elif i % 11 == 3:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        else:
            size = rng.randrange(0, 300)
            start = rng.randrange(0, len(pool) - size)
            value = pool[start:start + size]
        headers = [] if i % 4 == 0 else [("codec", label.encode()), ("seq", str(i).encode())]
        if i % 6 == 1:
            headers.append(("bin", b"\x00\xff\x01"))
        out.append({"key": key, "value": value, "headers": headers,
                    "partition": i % partition_count if i % 5 == 0 else None,
                    "timestamp_ms": base_ms + 7 * i})
    return out


def check_kp_consumed(what, consumed, sent, partition_count):
    """consumed {p: [ConsumerRecord]} holds exactly sent [(message, RecordMetadata)] at the
    acknowledged offsets, contiguous from 0, with the timestamps given (CreateTime)."""
    by_place = {}
    for m, md in sent:
        place = (md.partition, md.offset)
        check(place not in by_place, "%s: two records acknowledged at partition %d offset %d" % ((what,) + place))
        by_place[place] = m
    for p in range(partition_count):
        records = consumed[p]
        check_offsets_contiguous("%s partition %d" % (what, p), [r.offset for r in records])
        want_count = sum(1 for (q, _) in by_place if q == p)
        check(len(records) == want_count, "%s partition %d: %d records read, %d acknowledged"
              % (what, p, len(records), want_count))
        for r in records:
            m = by_place.get((p, r.offset))
            check(m is not None, "%s partition %d offset %d: read a record nobody acknowledged there" % (what, p, r.offset))
            got = (r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp, r.timestamp_type)
            want = (m["key"], m["value"], m["headers"], m["timestamp_ms"], 0)
            check(got == want, "%s partition %d offset %d differs\n      got:  %r\n      want: %r"
                  % (what, p, r.offset, got, want))


def scenario_kafka_python_produce(ctx):
    """kafka-python writes (acks=all) under every codec it has, reads back with assign/seek."""
    broker = ctx.broker()
    topic = "kpp-events"
    create_topics(broker, [(topic, 3, None)])
    codecs = kp_codecs()
    base_ms = now_ms() - 3600 * 1000
    sent = []
    written = {p: {} for p in range(3)}  # offset -> the codec its producer used
    for i, codec in enumerate(codecs):
        producer = kp_producer(broker, compression_type=None if codec == "none" else codec,
                               linger_ms=20, batch_size=16384)
        try:
            messages = kp_story_messages(codec, 3000, 3, base_ms + i * 100000, seed=i)
            metadata = kp_send(producer, topic, messages)
        finally:
            producer.close(timeout=10)
        for m, md in zip(messages, metadata):
            check(md.topic == topic and 0 <= md.partition < 3 and md.offset >= 0,
                  "kafka-python acknowledged %r" % (md,))
            if m["partition"] is not None:
                check(md.partition == m["partition"], "record for partition %d acknowledged on %d"
                      % (m["partition"], md.partition))
            sent.append((m, md))
            written[md.partition][md.offset] = codec
    consumed = kp_consume(broker, topic, [0, 1, 2])
    check_kp_consumed(topic, consumed, sent, 3)
    # kafka-python puts a record with neither key nor partition on a
    # partition of its random choice: the records are observed in the order
    # sent, each as read at the offset acknowledged for it, with its
    # partition where the key or the caller chose it.
    read = {(p, r.offset): r for p in range(3) for r in consumed[p]}
    ctx.observe("records read back in the order sent (partition, key, value, headers, timestamp - base, type)",
                records_summary([md.partition if m["key"] is not None or m["partition"] is not None else None,
                                 r.key, r.value, list(r.headers), r.timestamp - base_ms, r.timestamp_type]
                                for m, md in sent for r in [read[(md.partition, md.offset)]]))
    codec_problems = []
    for p in range(3):
        check_disk(broker, topic, p, [c for _, c in sorted(written[p].items())], codec_problems)
    ctx.say("codecs %s, %d records" % (",".join(codecs), len(sent)))
    broker.check_alive()
    check_codecs(codec_problems)


def scenario_kafkajs_produce(ctx):
    """kafkajs 2.2.4 writes (acks -1, none and gzip, headers); kafka-python and kcat read it back."""
    module = os.path.join(HERE, "node_modules", "kafkajs", "package.json")
    check(os.path.exists(module), "kafkajs is not installed (bash tools/deps.sh test runs npm ci)")
    broker = ctx.broker()
    topic = "kjs-events"
    sends, per_send = 10, 120
    code, out, _ = ctx.run(["node", os.path.join(HERE, "kafkajs_produce.js"), str(broker.port), topic,
                            str(sends), str(per_send)], check_exit=False)
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise Failure("kafkajs_produce.js printed no JSON result (%s)" % e)
    check(code == 0 and "failed" not in r, "kafkajs step %r failed: %s" % (r.get("failed"), json.dumps(r.get("error"))))
    messages = r["messages"]
    check(len(messages) == sends * per_send, "kafkajs reported %d records, sent %d" % (len(messages), sends * per_send))

    want = {p: {} for p in range(3)}
    for m in messages:
        check(m["offset"] not in want[m["partition"]], "kafkajs: two records acknowledged at %d/%d"
              % (m["partition"], m["offset"]))
        want[m["partition"]][m["offset"]] = m

    def expected(p):
        return [(m["key"], m["value"], tuple(tuple(h) for h in m["headers"]))
                for _, m in sorted(want[p].items())]

    ctx.observe("offsets kafkajs was acknowledged, by partition", {p: sorted(want[p]) for p in range(3)})

    # kafka-python reads every partition: same records at the acknowledged offsets.
    consumed = kp_consume(broker, topic, [0, 1, 2])
    ctx.observe("read back by kafka-python", {p: kp_observed(consumed[p]) for p in range(3)})
    for p in range(3):
        records = consumed[p]
        check_offsets_contiguous("%s partition %d (kafka-python)" % (topic, p), [x.offset for x in records])
        check(sorted(want[p]) == [x.offset for x in records],
              "%s partition %d: kafkajs acknowledged offsets %r..., kafka-python read %r..."
              % (topic, p, sorted(want[p])[:5], [x.offset for x in records][:5]))
        first_difference("%s partition %d read by kafka-python" % (topic, p), [kp_record(x) for x in records], expected(p))
        for x in records:
            check(x.timestamp == want[p][x.offset]["timestamp"] and x.timestamp_type == 0,
                  "%s partition %d offset %d: timestamp %d (type %d), kafkajs sent %d as CreateTime"
                  % (topic, p, x.offset, x.timestamp, x.timestamp_type, want[p][x.offset]["timestamp"]))

    # kcat reads them too.
    consumed = kcat_consume(ctx, broker, topic, [0, 1, 2])
    ctx.observe("read back by kcat", {p: kcat_observed(consumed[p]) for p in range(3)})
    for p in range(3):
        check_offsets_contiguous("%s partition %d (kcat)" % (topic, p), [x["offset"] for x in consumed[p]])
        first_difference("%s partition %d read by kcat" % (topic, p), [kcat_record(x) for x in consumed[p]], expected(p))
        check([x["ts"] for x in consumed[p]] == [m["timestamp"] for _, m in sorted(want[p].items())],
              "%s partition %d: kcat's timestamps differ from kafkajs's" % (topic, p))
        # Each send is one batch per partition, alternating none and gzip.
        check_disk(broker, topic, p, [m["codec"] for _, m in sorted(want[p].items())])
    broker.check_alive()


def scenario_cross_codec(ctx):
    """kcat and kafka-python read, in one partition, batches each other compressed with every codec."""
    broker = ctx.broker()
    topic = "cc-mixed"
    create_topics(broker, [(topic, 2, None)])
    kp_codecs()
    # Partition 0 gets, in turn, librdkafka's and kafka-python's batches of
    # every codec; partition 1 the zstd ones (Kafka 4.4 serves zstd even to
    # kafka-python's Fetch v4, as the reference run shows).
    plan = [(0, "kcat", "lz4"), (0, "kafka-python", "gzip"), (0, "kcat", "snappy"),
            (0, "kafka-python", "lz4"), (0, "kcat", "gzip"), (0, "kafka-python", "snappy"),
            (0, "kcat", "none"), (0, "kafka-python", "none"),
            (1, "kcat", "zstd"), (1, "kafka-python", "zstd"), (1, "kcat", "zstd")]
    want = {0: [], 1: []}
    base_ms = now_ms() - 3600 * 1000
    for step, (p, client, codec) in enumerate(plan):
        label = "s%02d-%s-%s" % (step, client.replace("-", ""), codec)
        if client == "kcat":
            messages = [m for m in kcat_messages(label, 400, seed=100 + step)]
            kcat_produce(ctx, broker, [(topic, codec, messages)], extra=["-p", str(p)])
            want[p] += [(m[0], m[1], m[2], codec) for m in messages]
        else:
            messages = kp_story_messages(label, 400, 2, base_ms, seed=100 + step)
            for m in messages:
                m["partition"] = p
                if m["key"] is None:
                    m["key"] = b"null-key-replaced"
                if m["value"] is not None and not _is_utf8(m["value"]):
                    m["value"] = m["value"].hex().encode()  # kcat -J prints text
                m["headers"] = [(k, v if _is_utf8(v) else v.hex().encode()) for k, v in m["headers"]]
            producer = kp_producer(broker, compression_type=None if codec == "none" else codec,
                                   linger_ms=20, batch_size=16384)
            try:
                kp_send(producer, topic, messages)
            finally:
                producer.close(timeout=10)
            want[p] += [(text(m["key"]), text(m["value"]), tuple((k, text(v)) for k, v in m["headers"]), codec)
                        for m in messages]
    wanted = {p: [m[:3] for m in want[p]] for p in (0, 1)}
    by_kcat = kcat_consume(ctx, broker, topic, [0, 1])
    by_kp = kp_consume(broker, topic, [0, 1])
    ctx.observe("read back by kcat", {p: kcat_observed(by_kcat[p]) for p in (0, 1)})
    ctx.observe("read back by kafka-python", {p: kp_observed(by_kp[p]) for p in (0, 1)})
    for p in (0, 1):
        check_offsets_contiguous("%s partition %d (kcat)" % (topic, p), [r["offset"] for r in by_kcat[p]])
        first_difference("%s partition %d read by kcat" % (topic, p), [kcat_record(r) for r in by_kcat[p]], wanted[p])
        check_offsets_contiguous("%s partition %d (kafka-python)" % (topic, p), [r.offset for r in by_kp[p]])
        first_difference("%s partition %d read by kafka-python" % (topic, p), [kp_record(r) for r in by_kp[p]], wanted[p])
    broker.check_alive()
    codec_problems = []
    for p in (0, 1):
        check_disk(broker, topic, p, [m[3] for m in want[p]], codec_problems)
    check_codecs(codec_problems)


def _is_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def scenario_log_restart(ctx):
    """Records survive SIGTERM and a restart on the same data; new offsets continue the log."""
    broker = ctx.broker()
    topic = "lr-events"
    create_topics(broker, [(topic, 3, None)])
    messages = kcat_messages("lr", 30000, seed=7)
    kcat_produce(ctx, broker, [(topic, "lz4", messages)])
    producer = kp_producer(broker, compression_type="gzip", linger_ms=10)
    try:
        extra = kp_story_messages("lr", 300, 3, now_ms() - 60000, seed=8)
        kp_send(producer, topic, extra)
    finally:
        producer.close(timeout=10)
    before = kcat_consume(ctx, broker, topic, [0, 1, 2])
    ends = {p: len(before[p]) for p in range(3)}
    for p in range(3):
        check_offsets_contiguous("%s partition %d before the restart" % (topic, p), [r["offset"] for r in before[p]])
    check(sum(ends.values()) == 30000 + len(extra),
          "%d records read before the restart, %d written" % (sum(ends.values()), 30000 + len(extra)))
    # kafka-python places its records without key at random: the records
    # are observed without their place, sorted.
    ctx.observe("records before the restart (key, value, headers), sorted",
                records_summary(sorted([r.get("key") or "", r.get("payload") or "", r.get("headers") or []]
                                       for p in range(3) for r in before[p])))

    broker.stop()
    check(not broker.problems, "; ".join(broker.problems))
    broker.start()

    after = kcat_consume(ctx, broker, topic, [0, 1, 2])
    for p in range(3):
        first_difference("%s partition %d after the restart (offsets, timestamps, keys, values, headers)"
                         % (topic, p), after[p], before[p], describe=json.dumps)
    ctx.observe("after the restart, each partition reads as before",
                {p: after[p] == before[p] for p in range(3)})
    for p in range(3):
        for ts, want in (("-2", 0), ("-1", ends[p])):
            _, out, _ = ctx.run(["kcat", "-b", broker.bootstrap, "-Q", "-t", "%s:%d:%s" % (topic, p, ts)])
            check(out.split() == [topic, "[%d]" % p, "offset", str(want)],
                  "kcat -Q %s:%d:%s after the restart printed %r, want offset %d" % (topic, p, ts, out.strip(), want))

    # Producing again continues each partition where it ended.
    producer = kp_producer(broker, linger_ms=5)
    try:
        more = [{"key": b"after-%d-%d" % (p, i), "value": b"v%d" % i, "headers": [("after", b"restart")],
                 "partition": p} for p in range(3) for i in range(50)]
        metadata = kp_send(producer, topic, more)
    finally:
        producer.close(timeout=10)
    ctx.observe("offsets acknowledged after the restart, from each partition's end",
                {p: [md.offset - ends[p] for m, md in zip(more, metadata) if m["partition"] == p] for p in range(3)})
    for p in range(3):
        offsets = [md.offset for m, md in zip(more, metadata) if m["partition"] == p]
        check(offsets == list(range(ends[p], ends[p] + 50)),
              "%s partition %d: records after the restart acknowledged at %r..., want %d..%d"
              % (topic, p, offsets[:5], ends[p], ends[p] + 49))
    again = kcat_consume(ctx, broker, topic, [0, 1, 2])
    ctx.observe("records written after the restart, read back by kcat",
                {p: [kcat_record(r) for r in again[p][ends[p]:]] for p in range(3)})
    for p in range(3):
        first_difference("%s partition %d: the old records after more were written" % (topic, p),
                         again[p][:ends[p]], before[p], describe=json.dumps)
        check([kcat_record(r) for r in again[p][ends[p]:]] ==
              [("after-%d-%d" % (p, i), "v%d" % i, (("after", "restart"),)) for i in range(50)],
              "%s partition %d: the records written after the restart read back as %r"
              % (topic, p, [kcat_record(r) for r in again[p][ends[p]:ends[p] + 3]]))
    broker.check_alive()


def crash_value(key):
    return "%s:%s" % (key, "x" * (zlib.crc32(key.encode()) % 200))


CRASH_TOPICS = {"plain": "crash-plain", "idempotent": "crash-idempotent"}
CRASH_PARTITIONS = [0, 1, 2]


def crash_producer(broker, mode):
    from confluent_kafka import Producer
    # At most CRASH_IN_FLIGHT records between produce() and their answer:
    # the producer still goes as fast as the broker answers, and a round
    # stays near the size it was given.
    config = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2,
              "queue.buffering.max.messages": CRASH_IN_FLIGHT,
              # Small batches: many requests in flight when the kill comes.
              "batch.num.messages": 100,
              "socket.timeout.ms": 5000, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
              "logger": logging.getLogger("confluent_kafka")}
    if mode == "plain":
        # Never resend: a record is acknowledged once or not at all.
        config.update({"enable.idempotence": False, "message.send.max.retries": 0,
                       "message.timeout.ms": 10000})
    else:
        # Resends what the kill left unanswered; the restarted broker must
        # know, from the log alone (no snapshot after a SIGKILL), which of
        # those batches it already has.
        # "debug": "eos" puts librdkafka's idempotence state changes into
        # the client log printed on a failure.
        config.update({"enable.idempotence": True, "message.timeout.ms": 60000, "debug": "eos"})
    return Producer(config)


def crash_round(ctx, broker, rnd, mode, rng):
    """One round: produce at full speed, SIGKILL after a random number of
    acknowledgements, restart. Returns (round facts, [(partition, offset, key)]
    acknowledged, [keys produced] in order)."""
    topic = CRASH_TOPICS[mode]
    acked, failed, produced = [], [], []

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.key().decode()))
        else:
            failed.append((msg.key().decode(), err.name()))

    producer = crash_producer(broker, mode)
    # The kill comes after a random number of acknowledgements, with the
    # producer going as fast as it can: requests are in flight then.
    kill_at_ack = rng.randrange(CRASH_ACKS_MIN, CRASH_ACKS_MAX)
    deadline = time.monotonic() + CRASH_ROUND_S
    killed_at_ack = None
    try:
        while time.monotonic() < deadline:
            key = "%s-%04d-%07d" % (mode[0], rnd, len(produced))
            try:
                producer.produce(topic, key=key, value=crash_value(key), partition=len(produced) % 3,
                                 on_delivery=on_delivery)
                produced.append(key)
            except BufferError:
                producer.poll(0.005)
            producer.poll(0)
            if len(acked) >= kill_at_ack and len(produced) > len(acked) + len(failed):
                broker.kill()
                killed_at_ack = len(acked)
                break
        check(killed_at_ack is not None, "round %d (%s): %d of %d records acknowledged within %d s, want %d "
              "before the kill (%d failed)" % (rnd, mode, len(acked), len(produced), CRASH_ROUND_S, kill_at_ack,
                                               len(failed)))
        check(broker.runs[-1][3] == -9, "round %d: broker ended with %r, want SIGKILL" % (rnd, broker.runs[-1][3]))
        check(len(produced) > killed_at_ack, "round %d: nothing was in flight when the broker was killed" % rnd)
        if mode == "plain":
            # What was not answered before the kill never will be: drop it.
            producer.purge(True, True, True)
            left = producer.flush(5.0)
            check(left == 0, "round %d: %d records still queued after purge and flush" % (rnd, left))
        broker.start()
        if mode == "idempotent":
            # Everything produced gets delivered, once, by the resends.
            left = producer.flush(CRASH_ROUND_S)
            check(left == 0 and not failed, "round %d (idempotent): %d records still queued %d s after the "
                  "restart, %d failed (first: %r)" % (rnd, left, CRASH_ROUND_S, len(failed), failed[:3]))
            check(len(acked) == len(produced), "round %d (idempotent): %d of %d acknowledged"
                  % (rnd, len(acked), len(produced)))
    finally:
        del producer
    facts = {"round": rnd, "mode": mode, "kill_at_ack": kill_at_ack, "produced": len(produced),
             "acked_at_kill": killed_at_ack, "acked": len(acked), "not_acked": len(failed),
             "ready_s": broker.ready_s}
    return facts, acked, produced


def verify_crash_topic(ctx, broker, mode, acked, produced, when, verified):
    """Every acknowledged record of the topic is there once, at its offset;
    records of a partition are in the order they were produced; offsets are
    contiguous; every batch on disk passes its CRC. An idempotent topic
    holds exactly what was produced. Returns the records read."""
    topic = CRASH_TOPICS[mode]
    logs = kcat_consume(ctx, broker, topic, CRASH_PARTITIONS)
    seen = {}
    for p in CRASH_PARTITIONS:
        records = logs[p]
        check_offsets_contiguous("%s partition %d %s" % (topic, p, when), [r["offset"] for r in records])
        keys = []
        for r in records:
            key = r.get("key")
            check(key is not None and r.get("payload") == crash_value(key),
                  "%s partition %d offset %d %s: key %r value %r is not a record the producer wrote"
                  % (topic, p, r["offset"], when, key, (r.get("payload") or "")[:60]))
            check(key not in seen, "%s %s: key %s is at %d/%d and again at %d/%d"
                  % (topic, when, key, seen.get(key, (0, 0))[0], seen.get(key, (0, 0))[1], p, r["offset"]))
            seen[key] = (p, r["offset"])
            keys.append(key)
        # Keys sort in the order they were produced (round, then sequence).
        bad = next((i for i in range(1, len(keys)) if keys[i] <= keys[i - 1]), None)
        check(bad is None, "%s partition %d %s: out of the order produced at offset %s: %r then %r"
              % (topic, p, when, bad, keys[bad - 1] if bad else None, keys[bad] if bad else None))
        batches, end = check_log_crc(broker, topic, p, verified)
        check(end == len(records), "%s-%d %s: the segments end at offset %d, a consumer read %d records"
              % (topic, p, when, end, len(records)))
    for p, offset, key in acked:
        check(seen.get(key) == (p, offset), "%s %s: %s was acknowledged at %d/%d but is %s"
              % (topic, when, key, p, offset, "missing" if key not in seen else "at %d/%d" % seen[key]))
    if mode == "idempotent":
        # Every record produced was acknowledged (crash_round checks), so
        # this with the checks above is "each exactly once, in order".
        check(len(seen) == len(produced), "%s %s: %d records in the log, %d produced (each exactly once)"
              % (topic, when, len(seen), len(produced)))
    return logs


def scenario_crash_recovery(ctx):
    """librdkafka produces acks=all (plain and idempotent) while the broker is SIGKILLed; every ack survives, once."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    seed = int(os.environ.get("RUNNEL_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    ctx.note("crash_recovery seed", "RUNNEL_CRASH_SEED=%d replays these kill times" % seed)
    broker = ctx.broker()
    create_topics(broker, [(t, len(CRASH_PARTITIONS), None) for t in CRASH_TOPICS.values()])
    acked = {m: [] for m in CRASH_TOPICS}
    produced = {m: [] for m in CRASH_TOPICS}
    verified = {}
    rounds = []
    started = time.monotonic()
    for rnd in range(CRASH_ROUNDS):
        mode = "plain" if rnd % 2 == 0 else "idempotent"
        facts, round_acked, round_produced = crash_round(ctx, broker, rnd, mode, rng)
        acked[mode] += round_acked
        produced[mode] += round_produced
        verify_crash_topic(ctx, broker, mode, acked[mode], produced[mode], "after round %d" % rnd, verified)
        facts["checked"] = len(acked[mode])
        rounds.append(facts)
        ctx.note("crash round %d" % rnd, facts)
        if CRASH_VERBOSE:
            ctx.say("round %3d %-10s killed at %6d acks (%6d produced); %7d acknowledged records checked; "
                    "ready %.3f s after start" % (rnd, mode, facts["acked_at_kill"], facts["produced"],
                                                   facts["checked"], facts["ready_s"]))
    # The other topic too, after the last round's recovery.
    for mode in CRASH_TOPICS:
        verify_crash_topic(ctx, broker, mode, acked[mode], produced[mode], "at the end", verified)
    ready = sorted(r["ready_s"] for r in rounds)
    ctx.say("%d rounds (%d plain, %d idempotent) in %.0f s: %d acknowledged records checked (%d plain, "
            "%d idempotent), %d batches CRC-checked; ready after restart min %.3f / median %.3f / max %.3f s; "
            "seed %d" % (len(rounds), sum(r["mode"] == "plain" for r in rounds),
                         sum(r["mode"] == "idempotent" for r in rounds), time.monotonic() - started,
                         len(acked["plain"]) + len(acked["idempotent"]), len(acked["plain"]),
                         len(acked["idempotent"]), len(verified), ready[0], ready[len(ready) // 2], ready[-1], seed))
    if not CRASH_VERBOSE:
        ctx.say("ready after each restart (s): " + " ".join("%.2f" % r["ready_s"] for r in rounds))
    # Kafka's own reading of what recovery left.
    if os.path.isfile(os.path.join(KAFKA_LIB, "kafka-tools-4.4.0.jar")):
        logs = [f for t in CRASH_TOPICS.values() for p in CRASH_PARTITIONS for f in segment_files(broker, t, p, ".log")]
        dump_log_segments(ctx, ["--deep-iteration", "--files", ",".join(logs)], "of the crashed and recovered log")
        ctx.say("DumpLogSegments --deep-iteration: %d segments, nothing wrong" % len(logs))
    else:
        ctx.skip_check("no Kafka jars in %s: DumpLogSegments did not read the recovered log (the CRC scan did)"
                       % KAFKA_LIB)
    broker.check_alive()


scenario_crash_recovery.timeout_s = 60 + CRASH_ROUNDS * (CRASH_ROUND_S + 10)


def scenario_list_offsets_time(ctx):
    """ListOffsets by timestamp (kcat -Q, kafka-python offsets_for_times, v7), earliest, latest, max."""
    broker = ctx.broker()
    topic = "lt-times"
    create_topics(broker, [(topic, 4, None)])
    count = 2000
    base_ms = (now_ms() - 7200 * 1000) // 1000 * 1000
    rng = random.Random(5)
    # Partitions 0 and 2: increasing timestamps, 10 ms apart. Partitions 1
    # and 3: the same values shuffled, so the answer is the first offset (not
    # the first batch) whose timestamp is at least the target. 0 and 1 are
    # lz4 batches (a broker must look inside to answer), 2 and 3 uncompressed.
    parts = (0, 1, 2, 3)
    codecs = {0: "lz4", 1: "lz4", 2: "none", 3: "none"}
    stamps = {0: [base_ms + 10 * i for i in range(count)]}
    stamps[1] = list(stamps[0])
    rng.shuffle(stamps[1])
    stamps[2], stamps[3] = stamps[0], stamps[1]
    for codec in ("lz4", "none"):
        producer = kp_producer(broker, linger_ms=50, batch_size=16384,
                               compression_type=None if codec == "none" else codec)
        try:
            messages = [{"key": b"lt-%d-%05d" % (p, i), "value": value_pool()[i:i + 100].encode(), "headers": [],
                         "partition": p, "timestamp_ms": stamps[p][i]}
                        for p in parts if codecs[p] == codec for i in range(count)]
            metadata = kp_send(producer, topic, messages)
        finally:
            producer.close(timeout=10)
        for m, md in zip(messages, metadata):
            check(md.offset == int(m["key"].split(b"-")[2]), "record %r acknowledged at offset %d" % (m["key"], md.offset))
    for p in parts:
        batches = check_disk(broker, topic, p, [codecs[p]] * count)
        check(len(batches) > 5 and max(b["count"] for b in batches) > 10,
              "partition %d holds %d batches of at most %d records; the story wants several multi-record batches"
              % (p, len(batches), max(b["count"] for b in batches)))

    def expected(p, target):
        """Kafka's answer: the first offset whose timestamp is >= target, and that timestamp."""
        for offset, ts in enumerate(stamps[p]):
            if ts >= target:
                return offset, ts
        return -1, -1

    targets = {p: [base_ms - 5000, base_ms, base_ms + 1, base_ms + 10 * (count - 1), base_ms + 10 * count,
                   base_ms + 10 * (count // 2) + 3]
               + [base_ms + rng.randrange(0, 10 * count) for _ in range(12)] for p in parts}

    wrong = []  # every answer that differs, reported together at the end
    answers = {"offsets_for_times": [], "kcat -Q": [], "ListOffsets v7": []}  # observed, base-relative

    def since_base(ts):
        return ts if ts is None or ts < 0 else ts - base_ms

    # kafka-python offsets_for_times (ListOffsets v1+).
    kafka = kafka_python()
    from kafka import TopicPartition
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                                   api_version_auto_timeout_ms=10000, request_timeout_ms=30000)
    try:
        for p in parts:
            tp = TopicPartition(topic, p)
            for target in targets[p]:
                got = consumer.offsets_for_times({tp: target})[tp]
                offset, ts = expected(p, target)
                got_pair = (got.offset, got.timestamp) if got is not None else (-1, -1)
                answers["offsets_for_times"].append([p, since_base(target), got_pair[0], since_base(got_pair[1])])
                if got_pair != (offset, ts):
                    wrong.append("kafka-python offsets_for_times partition %d at base%+d ms: offset %d timestamp "
                                 "base%+d, want offset %d timestamp base%+d"
                                 % (p, target - base_ms, got_pair[0], got_pair[1] - base_ms, offset, ts - base_ms))
            tps = [tp]
            answers["offsets_for_times"].append([p, "beginning", consumer.beginning_offsets(tps)[tp],
                                                 "end", consumer.end_offsets(tps)[tp]])
            check(consumer.beginning_offsets(tps)[tp] == 0, "beginning_offsets partition %d: %r"
                  % (p, consumer.beginning_offsets(tps)))
            check(consumer.end_offsets(tps)[tp] == count, "end_offsets partition %d: %r, want %d"
                  % (p, consumer.end_offsets(tps), count))
    finally:
        consumer.close()

    # kcat -Q (librdkafka's offsetsForTimes): one query per timestamp, since a
    # partition named twice in one query gets one answer.
    for p in parts:
        queries = [("-2", 0), ("-1", count)] + [(str(t), expected(p, t)[0]) for t in targets[p][:8]]
        argvs = [["kcat", "-b", broker.bootstrap, "-Q", "-t", "%s:%d:%s" % (topic, p, ts)] for ts, _ in queries]
        for (ts, want), (_, out, _) in zip(queries, ctx.run_parallel(argvs)):
            answers["kcat -Q"].append([p, since_base(int(ts)), out.split()])
            if out.split() != [topic, "[%d]" % p, "offset", str(want)]:
                wrong.append("kcat -Q -t %s:%d:%s printed %r, want offset %d" % (topic, p, ts, out.strip(), want))

    # ListOffsets v7 on the wire: -2, -1, -3 (max timestamp, KIP-734), a timestamp.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        for p in parts:
            max_offset = max(range(count), key=lambda o: stamps[p][o])
            asks = [(-2, (0, -1)), (-1, (count, -1)), (-3, (max_offset, stamps[p][max_offset])),
                    (targets[p][6], expected(p, targets[p][6])), (base_ms + 10 * count, (-1, -1))]
            for n, (ts, (offset, stamp)) in enumerate(asks):
                got = wire.list_offsets_v7(s, 700 + 10 * p + n, topic, [(p, ts)])[p]
                answers["ListOffsets v7"].append([p, since_base(ts), got["error_code"], got["offset"],
                                                  since_base(got["timestamp"])])
                if (got["error_code"], got["offset"], got["timestamp"]) != (0, offset, stamp):
                    wrong.append("ListOffsets v7 partition %d timestamp %s: error %d offset %d timestamp %s, want "
                                 "error 0 offset %d timestamp %s"
                                 % (p, ts if ts < 0 else "base%+d" % (ts - base_ms), got["error_code"], got["offset"],
                                    got["timestamp"] if got["timestamp"] < 0 else "base%+d" % (got["timestamp"] - base_ms),
                                    offset, stamp if stamp < 0 else "base%+d" % (stamp - base_ms)))
    for what, seen in answers.items():
        ctx.observe(what, seen)
    broker.check_alive()
    check(not wrong, "%d of the ListOffsets answers differ from Kafka's (base = %d; partitions 0 (lz4) and 2 "
          "(uncompressed) hold base+10*offset, 1 (lz4) and 3 (uncompressed) the same shuffled):\n      %s"
          % (len(wrong), base_ms, "\n      ".join(wrong[:60])))


def scenario_long_poll(ctx):
    """A Fetch waiting at the log end answers soon after a produce, or after max_wait_ms."""
    broker = ctx.broker()
    topic = "lp-wait"
    create_topics(broker, [(topic, 1, None)])
    producer = kp_producer(broker, linger_ms=0)

    def produce(value):
        started = time.monotonic()
        md = kp_send(producer, topic, [{"key": b"k", "value": value, "headers": []}])[0]
        return md.offset, time.monotonic() - started

    timings = {}
    wrong = []  # timing checks that failed, reported together at the end
    try:
        first, _ = produce(b"first")
        check(first == 0, "first record acknowledged at offset %d" % first)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
            # Idle: nothing arrives, the answer comes after about max_wait_ms, empty.
            started = time.monotonic()
            wire.fetch_v4_send(s, 801, topic, 0, 1, max_wait_ms=3000, min_bytes=1)
            got = wire.fetch_v4_read(s, 801, timeout_s=15)[(topic, 0)]
            idle_s = timings["idle (max_wait 3000 ms)"] = time.monotonic() - started
            ctx.observe("idle Fetch at offset 1 (error, high watermark, bytes)",
                        [got["error_code"], got["high_watermark"], len(got["records"])])
            check(got["error_code"] == 0 and got["high_watermark"] == 1 and not got["records"],
                  "idle Fetch at offset 1: %r, want error 0, high watermark 1, no records" % got)
            if not 2.7 <= idle_s <= 4.5:
                wrong.append("idle Fetch with max_wait_ms 3000 answered after %.2f s" % idle_s)

            # Waiting: a record produced meanwhile is answered well before max_wait_ms.
            started = time.monotonic()
            wire.fetch_v4_send(s, 802, topic, 0, 1, max_wait_ms=5000, min_bytes=1)
            time.sleep(0.5)
            offset, ack_s = produce(b"wake up")
            acked = time.monotonic()
            got = wire.fetch_v4_read(s, 802, timeout_s=15)[(topic, 0)]
            answered = time.monotonic()
            timings["wake after ack"] = answered - acked
            timings["wake total (max_wait 5000 ms)"] = answered - started
            batches = wire.record_batches(got["records"], whole_only=False)
            ctx.observe("waiting Fetch at offset 1 (error, high watermark, batch offsets)",
                        [got["error_code"], got["high_watermark"], [b["base_offset"] for b in batches]])
            check(got["error_code"] == 0 and batches and batches[0]["base_offset"] == 1,
                  "waiting Fetch at offset 1: error %d, batches %r, want the record at offset 1"
                  % (got["error_code"], batches))
            if answered - acked >= 2.0:
                wrong.append("waiting Fetch (max_wait_ms 5000) answered %.2f s after the record was "
                             "acknowledged, want < 2 s" % (answered - acked))

            # min_bytes: a record smaller than min_bytes does not end the wait;
            # max_wait_ms does, and the record comes with it.
            started = time.monotonic()
            wire.fetch_v4_send(s, 803, topic, 0, 2, max_wait_ms=2000, min_bytes=100000)
            time.sleep(0.3)
            produce(b"small")
            got = wire.fetch_v4_read(s, 803, timeout_s=15)[(topic, 0)]
            waited_s = timings["min_bytes 100000 (max_wait 2000 ms)"] = time.monotonic() - started
            batches = wire.record_batches(got["records"], whole_only=False)
            ctx.observe("Fetch at offset 2 with min_bytes (error, high watermark, batch offsets)",
                        [got["error_code"], got["high_watermark"], [b["base_offset"] for b in batches]])
            check(got["error_code"] == 0 and batches and batches[0]["base_offset"] == 2,
                  "Fetch at offset 2 with min_bytes: error %d batches %r, want the record at offset 2"
                  % (got["error_code"], batches))
            if not 1.8 <= waited_s <= 3.5:
                wrong.append("Fetch at the end with min_bytes 100000 and max_wait_ms 2000, then one record "
                             "of %d bytes produced 0.3 s later: answered after %.2f s, want about 2 s (Kafka "
                             "answers once min_bytes are there or max_wait_ms has passed)"
                             % (sum(b["size"] for b in batches), waited_s))

        # A kafka-python consumer parked at the end (its fetch waits up to 5 s)
        # gets a new record soon after it is acknowledged.
        kafka = kafka_python()
        from kafka import TopicPartition
        consumer = kafka.KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                                       enable_auto_commit=False, fetch_max_wait_ms=5000,
                                       api_version_auto_timeout_ms=10000, request_timeout_ms=30000)
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_end(tp)
            end = consumer.position(tp)
            check(end == 3, "kafka-python position at the end: %d, want 3" % end)
            for _ in range(4):  # a fetch goes out and parks at the broker
                check(not consumer.poll(timeout_ms=100), "kafka-python got records past the end")
            offset, _ = produce(b"for the consumer")
            acked = time.monotonic()
            records = []
            while not records and time.monotonic() - acked < 8:
                records = consumer.poll(timeout_ms=100).get(tp, [])
            latency_s = timings["kafka-python consumer after ack"] = time.monotonic() - acked
            ctx.observe("kafka-python consumer parked at the end reads",
                        [[r.offset, r.value] for r in records])
            check([r.value for r in records] == [b"for the consumer"],
                  "kafka-python consumer (fetch_max_wait_ms 5000) read %r" % records)
            if latency_s >= 2.0:
                wrong.append("kafka-python consumer got the record %.2f s after it was acknowledged, want "
                             "< 2 s (its fetch waits up to 5 s)" % latency_s)
        finally:
            consumer.close()
    finally:
        producer.close(timeout=10)
        ctx.note("long poll timings (s)", {k: round(v, 3) for k, v in timings.items()})
    ctx.say("timings: " + ", ".join("%s %.2f s" % (k, v) for k, v in timings.items()))
    broker.check_alive()
    check(not wrong, "\n      ".join(wrong))


# --- dump_log: Kafka's DumpLogSegments on the broker's segments.

BATCH_LINE = re.compile(r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) .* position: (\d+) "
                        r"(CreateTime|LogAppendTime|NoTimestampType): (-?\d+) size: (\d+) magic: (\d+) "
                        r"compresscodec: (\w+) crc: (\d+) isvalid: (\w+)$")
RECORD_LINE = re.compile(r"^\| offset: (\d+) (CreateTime|LogAppendTime): (-?\d+) keySize: (-?\d+) "
                         r"valueSize: (-?\d+) sequence: (-?\d+) headerKeys: \[(.*?)\]"
                         r"(?: key: (\S*))?(?: payload: (.*))?$")
# What DumpLogSegments says when something is wrong (its stderr; stdout
# outside the record lines, whose payloads are the producers' text).
DUMP_TROUBLE = ("Mismatches in", "Found timestamp mismatch", "Found out of order timestamp",
                "indexed offsets are not found", "Non-consecutive offsets", "invalid bytes at the end",
                "Exception", "Corrupt", "corrupt", "Error", "isvalid: false")


def dump_log_segments(ctx, args, what):
    """bin/kafka-dump-log.sh as it runs in Kafka 4.4: org.apache.kafka.tools.DumpLogSegments."""
    java = shutil.which("java")
    check(java, "java is not installed (bash tools/deps.sh test installs openjdk-17-jdk-headless)")
    check(os.path.isfile(os.path.join(KAFKA_LIB, "kafka-tools-4.4.0.jar")),
          "no Kafka 4.4.0 jars in %s (bash tools/deps.sh test fetches them)" % KAFKA_LIB)
    argv = [java, "-Xmx512m", "-cp", os.path.join(KAFKA_LIB, "*"),
            "org.apache.kafka.tools.DumpLogSegments"] + args
    code, out, err = ctx.run(argv, timeout_s=JAVA_TIMEOUT_S, check_exit=False)
    said = [line for line in out.splitlines() if not line.startswith("| ")] + _real_gaps(err).splitlines()
    trouble = [line for line in said if any(t in line for t in DUMP_TROUBLE)]
    check(code == 0 and not trouble, "DumpLogSegments %s: exit %d, and it said:\n      %s"
          % (what, code, "\n      ".join(trouble[:20] or err.strip().splitlines()[:20])))
    return out, err


def _real_gaps(err):
    """DumpLogSegments's stderr without its report of a gap before the first
    record of every segment but the first: it starts each file's offset check
    from -1 ("Non-consecutive offsets in X / -1 is followed by <X's base
    offset>"), for Kafka's own rolled segments too."""
    kept, lines, i = [], err.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^Non-consecutive offsets in (.*)$", lines[i])
        if m:
            pairs = []
            j = i + 1
            while j < len(lines) and re.match(r"^  -?\d+ is followed by -?\d+$", lines[j]):
                pairs.append(tuple(int(x) for x in lines[j].split(" is followed by ")))
                j += 1
            base = int(os.path.basename(m.group(1)).split(".")[0])
            if pairs != [(-1, base)] or base == 0:
                kept += lines[i:j]
            i = j
            continue
        kept.append(lines[i])
        i += 1
    return "\n".join(kept)


def parse_dump(out):
    """DumpLogSegments --deep-iteration --print-data-log output: {file: [batch with "records"]}."""
    files = {}
    current = batch = None
    for line in out.splitlines():
        if line.startswith("Dumping "):
            current = files.setdefault(line[len("Dumping "):].strip(), {"start": None, "batches": []})
            batch = None
        elif line.startswith("Log starting offset: "):
            current["start"] = int(line.split(": ")[1])
        elif line.startswith("baseOffset: "):
            m = BATCH_LINE.match(line)
            check(m, "DumpLogSegments batch line not understood: %r" % line)
            batch = {"base": int(m.group(1)), "last": int(m.group(2)), "count": int(m.group(3)),
                     "position": int(m.group(4)), "size": int(m.group(7)), "magic": int(m.group(8)),
                     "codec": m.group(9), "valid": m.group(11), "records": []}
            current["batches"].append(batch)
        elif line.startswith("| offset: "):
            m = RECORD_LINE.match(line)
            check(m and batch is not None, "DumpLogSegments record line not understood: %r" % line)
            batch["records"].append({"offset": int(m.group(1)), "type": m.group(2),
                                     "header_keys": m.group(7), "key": m.group(8), "payload": m.group(9)})
        elif line.strip():
            raise Failure("DumpLogSegments printed a line not understood: %r" % line[:300])
    return files


def scenario_dump_log(ctx):
    """Kafka 4.4's DumpLogSegments reads the segments, indexes and time indexes: nothing wrong."""
    broker = ctx.broker()
    topic = "dl-mixed"
    per_codec = 10000
    # Small segments, so that the log rolls and several segments (and their
    # indexes) are checked; 1 MiB is Kafka 4's smallest segment.bytes.
    create_topics(broker, [(topic, 3, {"segment.bytes": "1048576"})])
    want = {p: [] for p in range(3)}
    for i, codec in enumerate(CODECS):
        messages = kcat_messages("dl-" + codec, per_codec, seed=200 + i)
        kcat_produce(ctx, broker, [(topic, codec, messages)])
        for m in messages:
            want[librdkafka_partition(m[0], 3)].append(m + (codec,))
    # And lz4 from kafka-python, whose lz4 does not depend on what the broker
    # advertises (librdkafka 2.0.2's does, see CODEC_HINT).
    producer = kp_producer(broker, compression_type="lz4", linger_ms=20)
    try:
        messages = [{"key": ("dl-kp-lz4-%05d" % i).encode(), "value": ("%d %s" % (i, value_pool()[i:i + i % 150])).encode(),
                     "headers": [("codec", b"lz4"), ("client", b"kafka-python")], "partition": i % 3}
                    for i in range(3000)]
        kp_send(producer, topic, messages)
    finally:
        producer.close(timeout=10)
    for m in messages:
        want[m["partition"]].append((text(m["key"]), text(m["value"]), tuple((k, text(v)) for k, v in m["headers"]), "lz4"))
    broker.stop()
    check(not broker.problems, "; ".join(broker.problems))

    logs, indexes = [], []
    for p in range(3):
        logs += segment_files(broker, topic, p, ".log")
        indexes += segment_files(broker, topic, p, ".index") + segment_files(broker, topic, p, ".timeindex")
    check(len(logs) > 3, "%d segments in 3 partitions; with segment.bytes=1048576 the log should have rolled: %r"
          % (len(logs), [os.path.basename(x) for x in logs]))

    out, _ = dump_log_segments(ctx, ["--deep-iteration", "--print-data-log", "--files", ",".join(logs)], "of the .log files")
    dumped = parse_dump(out)
    check(sorted(dumped) == sorted(logs), "DumpLogSegments dumped %r, asked for %r" % (sorted(dumped), sorted(logs)))
    codec_problems = []
    for p in range(3):
        records, codecs_read = [], []
        for path in segment_files(broker, topic, p, ".log"):
            f = dumped[path]
            base = int(os.path.basename(path).split(".")[0])
            check(f["start"] == base, "%s: DumpLogSegments says it starts at %r" % (path, f["start"]))
            position = 0
            for b in f["batches"]:
                where = "%s batch at offset %d" % (path, b["base"])
                check(b["valid"] == "true" and b["magic"] == 2, "%s: isvalid %s magic %d" % (where, b["valid"], b["magic"]))
                check(b["position"] == position, "%s: at byte %d, want %d" % (where, b["position"], position))
                position += b["size"]
                check(b["count"] == len(b["records"]) == b["last"] - b["base"] + 1,
                      "%s: count %d, %d records listed, offsets %d-%d" % (where, b["count"], len(b["records"]), b["base"], b["last"]))
                for r in b["records"]:
                    records.append((r["offset"], r["key"], r["payload"] or "", r["header_keys"], r["type"]))
                    codecs_read.append(b["codec"])
            check(position == os.path.getsize(path), "%s: batches end at byte %d of %d" % (path, position, os.path.getsize(path)))
        ctx.observe("partition %d as DumpLogSegments reads it (offset, key, payload, header keys, type)" % p,
                    records_summary(records))
        expected = [(o, m[0], m[1], ",".join(h for h, _ in m[2]), "CreateTime") for o, m in enumerate(want[p])]
        first_difference("%s-%d as DumpLogSegments reads it (offset, key, payload, header keys, timestamp type)"
                         % (topic, p), records, expected)
        # Which codec each record was stored with: Kafka's reading of the batch
        # attributes agrees with ours, and is what the producers asked for.
        stored = [b["codec"] for b in check_disk(broker, topic, p, [m[3] for m in want[p]], codec_problems)
                  for _ in range(b["count"])]
        check(codecs_read == stored, "%s-%d: DumpLogSegments reads batch codecs %r, the batch headers say %r"
              % (topic, p, runs(codecs_read), runs(stored)))

    dump_log_segments(ctx, ["--verify-index-only", "--files", ",".join(indexes)], "--verify-index-only")
    out, _ = dump_log_segments(ctx, ["--index-sanity-check", "--files", ",".join(indexes)], "--index-sanity-check")
    for path in indexes:
        check("%s passed sanity check." % path in out or "%s is empty." % path in out,
              "DumpLogSegments --index-sanity-check said nothing good of %s" % path)
    # The index checks above pass trivially on empty indexes: every segment
    # larger than a few index intervals (log.index.interval.bytes, 4096) has entries.
    for path in indexes:
        entry_bytes = 8 if path.endswith(".index") else 12
        size = os.path.getsize(path)
        log_size = os.path.getsize(path.rsplit(".", 1)[0] + ".log")
        check(size % entry_bytes == 0, "%s: %d bytes, not whole %d-byte entries" % (path, size, entry_bytes))
        if log_size > 4 * 65536:
            check(size >= entry_bytes, "%s: no entries for a %d-byte segment" % (path, log_size))
    ctx.say("%d segments, %d index files, %d records checked" % (len(logs), len(indexes), sum(len(w) for w in want.values())))
    broker.start()  # and the broker reopens what it wrote
    check(kcat_consume(ctx, broker, topic, [0])[0][-1]["key"] == want[0][-1][0], "last record of partition 0 after the restart")
    broker.check_alive()
    check_codecs(codec_problems)


SCENARIOS = [
    ("kcat_codecs", scenario_kcat_codecs),
    ("kafka_python_produce", scenario_kafka_python_produce),
    ("kafkajs_produce", scenario_kafkajs_produce),
    ("cross_codec", scenario_cross_codec),
    ("log_restart", scenario_log_restart),
    ("crash_recovery", scenario_crash_recovery),
    ("list_offsets_time", scenario_list_offsets_time),
    ("long_poll", scenario_long_poll),
    ("dump_log", scenario_dump_log),
]
