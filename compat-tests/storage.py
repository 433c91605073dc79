"""compat-tests/storage.py - the log when the disk under it fills up.

    disk_full   the log dir on a 16 MiB tmpfs; librdkafka produces acks=all until the disk is
                full: the refused records answer KAFKA_STORAGE_ERROR, the broker stays up,
                everything acknowledged reads back once and CRC-valid, consumers keep reading;
                once space is freed the same broker takes writes again, and after a restart too

What runnel does on a full disk, and how it differs from Kafka: the append
that finds no space writes nothing (the index blocks it needs are reserved
before the .log is written; a short write is cut off) and answers
KAFKA_STORAGE_ERROR, which clients retry; the partition stays writable, so
writes resume as soon as space is freed, without a restart. Kafka answers
the same error but takes the log dir offline, and shuts down once every log
dir is offline: there, writes resume only after freeing space and a
restart. Reads are not affected in either.

The tmpfs needs root (mount -t tmpfs); without it the scenario says so and
checks nothing. What it mounts it unmounts, whatever happens. Against the
reference broker the story stops where Kafka's shutdown ends it: the first
refusal and the exit are checked, the rest is skipped (and said).
"""

import logging
import os
import subprocess
import time
import zlib

from harness import Failure, check, is_reference
from logs import check_log_crc, create_topics, kcat_consume

FS_BYTES = 16 << 20
BALLAST_BYTES = 2 << 20  # on the tmpfs from the start; deleting it is "freeing space"
FILL_DEADLINE_S = 40
MAX_RECORDS = 400000  # 16 MiB of ~150-byte records is about 100,000
KAFKA_STORAGE_ERROR = 56
STOP_WAIT_S = 30  # for the reference broker to shut down once its log dir is offline


def _mount_tmpfs(ctx, path):
    """Mounts a FS_BYTES tmpfs on path; False (said) when this machine does not let us."""
    if os.geteuid() != 0:
        ctx.skip_check("disk_full: not root, so no tmpfs to fill; nothing checked")
        return False
    os.makedirs(path)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % FS_BYTES, "tmpfs", path],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if res.returncode != 0:
        ctx.skip_check("disk_full: mount -t tmpfs failed (%s); nothing checked"
                       % res.stdout.decode(errors="replace").strip())
        return False
    return True


def _unmount(ctx, path):
    res = subprocess.run(["umount", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if res.returncode != 0:
        # Something still holds it (a broker that did not stop): detach it
        # now, it goes when the last user does.
        subprocess.run(["umount", "-l", path], timeout=30)
        raise Failure("umount %s: %s" % (path, res.stdout.decode(errors="replace").strip()))


def _value(key):
    return ("%s:%s" % (key, "f" * (100 + zlib.crc32(key.encode()) % 50))).encode()


def _producer(broker, retries):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False,
                     "message.send.max.retries": retries, "retry.backoff.ms": 200, "linger.ms": 2,
                     "batch.num.messages": 200,  # many batches: many index entries
                     "message.timeout.ms": 20000, "socket.timeout.ms": 10000,
                     "logger": logging.getLogger("confluent_kafka")})


def _produce(producer, topic, keys, acked, errors, deadline, stop_after_error_s=None):
    """Produces keys round-robin over 3 partitions; acked gets (partition, offset, key),
    errors {error name: count}. Stops stop_after_error_s after the first error."""
    first_error = [None]

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.key().decode()))
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1
            if first_error[0] is None:
                first_error[0] = time.monotonic()

    sent = 0
    for key in keys:
        if time.monotonic() > deadline:
            break
        if stop_after_error_s is not None and first_error[0] is not None \
                and time.monotonic() - first_error[0] > stop_after_error_s:
            break
        while True:
            try:
                producer.produce(topic, key=key, value=_value(key), partition=sent % 3, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        sent += 1
        producer.poll(0)
    left = producer.flush(30)
    check(left == 0, "%d records still queued 30 s after the last was produced" % left)
    return sent


def _verify(ctx, broker, topic, acked, when, verified):
    """Every acknowledged record once, at its offset; offsets contiguous; every batch CRC-valid."""
    logs = kcat_consume(ctx, broker, topic, [0, 1, 2])
    seen = {}
    for p in range(3):
        offsets = [r["offset"] for r in logs[p]]
        check(offsets == list(range(len(offsets))), "%s-%d %s: offsets not contiguous from 0" % (topic, p, when))
        for r in logs[p]:
            key = r.get("key")
            check(key not in seen, "%s %s: %s twice" % (topic, when, key))
            check(r.get("payload", "").encode() == _value(key), "%s %s: %s has the wrong value" % (topic, when, key))
            seen[key] = (p, r["offset"])
        batches, end = check_log_crc(broker, topic, p, verified)
        check(end == len(offsets), "%s-%d %s: the segments end at offset %d, a consumer read %d records"
              % (topic, p, when, end, len(offsets)))
    for p, offset, key in acked:
        check(seen.get(key) == (p, offset), "%s %s: %s acknowledged at %d/%d is %s"
              % (topic, when, key, p, offset, "missing" if key not in seen else "at %d/%d" % seen[key]))
    return [len(logs[p]) for p in range(3)]


def scenario_disk_full(ctx):
    """A full disk: KAFKA_STORAGE_ERROR, the broker up, the log intact and readable; writes resume when freed."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    mnt = ctx.path("tmpfs")
    if not _mount_tmpfs(ctx, mnt):
        return
    broker = None
    try:
        ballast = os.path.join(mnt, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * BALLAST_BYTES)
        data = os.path.join(mnt, "data")
        os.makedirs(data)
        broker = ctx.broker(data_dir=data)
        topic = "df-events"
        # 1 MiB segments (Kafka's smallest): the log rolls as it fills.
        create_topics(broker, [(topic, 3, {"segment.bytes": "1048576"})])
        acked, errors = [], {}
        keys = ("k%07d" % i for i in range(MAX_RECORDS))
        # Without retries, so that each refusal is seen; on for 3 s after
        # the first one, every partition hits the full disk.
        producer = _producer(broker, retries=0)
        sent = _produce(producer, topic, keys, acked, errors, time.monotonic() + FILL_DEADLINE_S,
                        stop_after_error_s=3.0)
        del producer
        ctx.note("filling the disk", "%d sent, %d acknowledged, errors %r" % (sent, len(acked), errors))
        check(errors, "%d records acknowledged within %d s and the disk never filled" % (len(acked), FILL_DEADLINE_S))
        # How many fit depends on batching; what a full disk answers first does not.
        ctx.observe("the first refusal on a full disk", next(iter(errors)))
        if is_reference(ctx):
            code = broker.wait_exit(STOP_WAIT_S)
            ctx.observe("the broker serves on with its disk full", code is None)
            check(code is not None and next(iter(errors)) == "KAFKA_STORAGE_ERROR",
                  "Kafka answered %r and %s; want KAFKA_STORAGE_ERROR, then its shutdown (its only log dir "
                  "offline)" % (errors, "is still running" if code is None else "exited with %d" % code))
            ctx.skip_check("disk_full: Kafka shuts down once its only log dir is offline (exit %d): writes after "
                           "freeing space and the restart are runnel's" % code)
            return
        ctx.observe("the broker serves on with its disk full", broker.proc is not None and broker.proc.poll() is None)
        check(set(errors) == {"KAFKA_STORAGE_ERROR"},
              "a full disk answered %r, want KAFKA_STORAGE_ERROR only" % errors)
        df = os.statvfs(mnt)
        ctx.note("df", "%d of %d KiB free" % (df.f_bavail * df.f_frsize >> 10, df.f_blocks * df.f_frsize >> 10))
        broker.check_alive()

        # Consumers keep reading, and everything acknowledged is there, once.
        verified = {}
        ends = _verify(ctx, broker, topic, acked, "on the full disk", verified)
        check(sum(ends) == len(acked), "the log holds %d records, %d were acknowledged (nothing unacknowledged "
              "may be written)" % (sum(ends), len(acked)))

        # Space comes back: the same broker takes writes, at the next offsets.
        os.unlink(ballast)
        more, more_errors = [], {}
        producer = _producer(broker, retries=10)
        _produce(producer, topic, ("after-free-%03d" % i for i in range(300)), more, more_errors,
                 time.monotonic() + 30)
        del producer
        ctx.observe("after space was freed: errors, offsets from each partition's end",
                    [sorted(more_errors), {p: sorted(o - ends[p] for q, o, _ in more if q == p) for p in range(3)}])
        check(not more_errors, "after space was freed, without a restart: %r" % more_errors)
        for p in range(3):
            offsets = sorted(o for q, o, _ in more if q == p)
            check(offsets == list(range(ends[p], ends[p] + 100)),
                  "%s-%d after space was freed: acknowledged at %r..., want %d.." % (topic, p, offsets[:3], ends[p]))
        acked += more
        _verify(ctx, broker, topic, acked, "after space was freed", verified)

        # And after a restart, on what the full disk left.
        broker.stop()
        check(not broker.problems, "; ".join(broker.problems))
        started = time.monotonic()
        broker.start()
        restart_s = time.monotonic() - started
        _verify(ctx, broker, topic, acked, "after a restart", verified)
        last, last_errors = [], {}
        producer = _producer(broker, retries=10)
        _produce(producer, topic, ("after-restart-%03d" % i for i in range(30)), last, last_errors,
                 time.monotonic() + 30)
        del producer
        ctx.observe("after a restart: acknowledged, errors", [len(last), sorted(last_errors)])
        check(not last_errors and len(last) == 30, "after the restart: %d acknowledged, errors %r"
              % (len(last), last_errors))
        ctx.say("%d records acknowledged until the 16 MiB disk was full, %d refused with KAFKA_STORAGE_ERROR; "
                "300 more once space was freed (no restart), 30 after a restart (ready in %.2f s); %d batches "
                "CRC-checked" % (len(acked) - 300, errors.get("KAFKA_STORAGE_ERROR", 0), restart_s, len(verified)))
        broker.check_alive()
    finally:
        if broker is not None:
            broker.stop()
        _unmount(ctx, mnt)


SCENARIOS = [
    ("disk_full", scenario_disk_full),
]
