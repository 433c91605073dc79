"""compat-tests/java_clients.py - the Java client (kafka-clients 4.4) as an application uses it.

One small program (compat-tests/java/JavaClients.java, compiled against
Kafka's jars into build/compat-java/) prints what the client saw as JSON
lines; these stories decide:

    java_txn         a transactional producer commits some transactions and aborts others
                     over two partitions; a read_committed consumer reads exactly the committed
                     records, a read_uncommitted one every record; each transaction left one
                     marker per partition; librdkafka's read_committed reader agrees
    java_zombie      a second producer with the same transactional.id fences the first, whose
                     next send or commit fails with ProducerFencedException; what the zombie
                     wrote is in the log but never read_committed
    java_idempotent  the default producer (idempotent, acks=all, five requests in flight):
                     batches carry one producer id and gapless sequences; every record is read
                     back once, at its acknowledged offset

The Java client picks KIP-890's transaction version 2 when the broker finalizes
transaction.version 2 (Kafka 4.4 does) and version 1 otherwise (runnel); the
stories hold for both, and say which one ran.

Environment: KAFKA_LIB (the jars, default build/kafka-lib).
"""

import json
import os
import shutil
import subprocess
import time

from harness import REPO, Failure, check, records_summary
from logs import KAFKA_LIB, create_topics, disk_batches
from java_tools import run_tool
from transactions import read_all

SOURCE = os.path.join(REPO, "compat-tests", "java", "JavaClients.java")
CLASSES = os.path.join(REPO, "build", "compat-java")
COMPILE_TIMEOUT_S = 120
RUN_TIMEOUT_S = 60  # the program gives up on its own after 45 s
FENCED = "org.apache.kafka.common.errors.ProducerFencedException"
OLD_EPOCH = "org.apache.kafka.common.errors.InvalidProducerEpochException"
# Warnings and errors of the clients on stderr: stdout is the program's JSON.
LOG4J2 = """\
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""


def java_program(ctx):
    """Compiles JavaClients.java into build/compat-java/ unless its class is newer."""
    for tool in ("java", "javac"):
        check(shutil.which(tool), "%s is not installed (bash tools/deps.sh test installs openjdk-17-jdk-headless)"
              % tool)
    check(os.path.isfile(os.path.join(KAFKA_LIB, "kafka-clients-4.4.0.jar")),
          "no kafka-clients-4.4.0.jar in %s (bash tools/deps.sh test fetches Kafka's jars)" % KAFKA_LIB)
    compiled = os.path.join(CLASSES, "JavaClients.class")
    if not os.path.exists(compiled) or os.path.getmtime(compiled) < os.path.getmtime(SOURCE):
        os.makedirs(CLASSES, exist_ok=True)
        argv = ["javac", "-d", CLASSES, "-cp", os.path.join(KAFKA_LIB, "*"), SOURCE]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Failure("javac did not finish within %d s" % COMPILE_TIMEOUT_S)
        if p.returncode != 0:
            ctx.note("$ " + " ".join(argv), p.stdout + p.stderr)
            raise Failure("javac of compat-tests/java/JavaClients.java failed (exit %d)" % p.returncode)
    log4j = ctx.path("java-clients-log4j2.properties")
    if not os.path.exists(log4j):
        with open(log4j, "w") as f:
            f.write(LOG4J2)
    return ["java", "-Xmx256M", "-XX:TieredStopAtLevel=1", "-Dlog4j2.configurationFile=" + log4j,
            "-cp", CLASSES + os.pathsep + os.path.join(KAFKA_LIB, "*"), "JavaClients"]


def parse_events(step, code, out):
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            raise Failure("JavaClients %s printed a line that is not JSON: %r" % (step, line[:200]))
    failed = [e for e in events if e["event"] == "error"]
    if failed:
        raise Failure("JavaClients %s: %s (%s)" % (step, failed[0].get("error"), " <- ".join(failed[0]["classes"])))
    check(code == 0 and events and events[-1]["event"] == "done",
          "JavaClients %s exited with %d without saying done" % (step, code))
    return events


def java_runs(ctx, runs):
    """Runs steps side by side: runs is [(step, broker, args)]; their events, in order."""
    program = java_program(ctx)
    argvs = [program + [step, broker.bootstrap] + [str(a) for a in args] for step, broker, args in runs]
    results = ctx.run_parallel(argvs, timeout_s=RUN_TIMEOUT_S, check_exit=False)
    return [parse_events(step, code, out) for (step, _, _), (code, out, _) in zip(runs, results)]


def java_run(ctx, step, broker, *args):
    return java_runs(ctx, [(step, broker, args)])[0]


def named(events, name):
    return [e for e in events if e["event"] == name]


def consumed(events, partitions):
    """{partition: [values]} in offset order, and {partition: end offset} as the consumer saw them."""
    got = {p: [] for p in range(partitions)}
    offsets = {p: [] for p in range(partitions)}
    for e in named(events, "got"):
        got[e["p"]].append(e["value"])
        offsets[e["p"]].append(e["o"])
    for p, o in offsets.items():
        check(o == sorted(set(o)), "partition %d read offsets %r, not increasing" % (p, o[:20]))
    return got, {e["p"]: e["offset"] for e in named(events, "end")}


def consume_both(ctx, broker, topic, partitions):
    """The Java consumer at both isolation levels, side by side: ((got, ends), (got, ends))."""
    committed, uncommitted = java_runs(ctx, [("consume", broker, (topic, partitions, "read_committed")),
                                             ("consume", broker, (topic, partitions, "read_uncommitted"))])
    return consumed(committed, partitions), consumed(uncommitted, partitions)


def say_version(ctx, events, client="the Java producer"):
    v2 = [e["v2"] for e in events if "v2" in e]
    if v2 and v2[0] is not None:
        ctx.say("%s ran transaction version %d" % (client, 2 if v2[0] else 1))


# ---------------------------------------------------------------------------


def scenario_java_txn(ctx):
    """Java commits and aborts transactions; read_committed sees the committed, read_uncommitted all."""
    broker = ctx.broker()
    topic, partitions, plan, per_txn = "jt-events", 2, "ccacaac", 10
    create_topics(broker, [(topic, partitions, None)])
    events = java_run(ctx, "txn-produce", broker, topic, partitions, "java-txn", plan, per_txn)
    say_version(ctx, events)
    sent = sorted(named(events, "sent"), key=lambda e: (e["p"], e["o"]))
    check(len(sent) == len(plan) * per_txn, "%d records sent, want %d" % (len(sent), len(plan) * per_txn))
    want = {p: [e["value"] for e in sent if e["p"] == p and e["commit"]] for p in range(partitions)}
    every = {p: [e["value"] for e in sent if e["p"] == p] for p in range(partitions)}
    check(all(want.values()) and want != every, "the plan left nothing to tell apart: %r" % want)

    (got_c, ends_c), (got_u, ends_u) = consume_both(ctx, broker, topic, partitions)
    ctx.observe("acknowledged (partition, offset, value, committed)",
                [[e["p"], e["o"], e["value"], e["commit"]] for e in sent])
    ctx.observe("Java read_committed reads, and its end offsets", [got_c, ends_c])
    ctx.observe("Java read_uncommitted reads, and its end offsets", [got_u, ends_u])
    check(got_c == want, "Java read_committed read %r, want only the committed records %r" % (got_c, want))
    check(got_u == every, "Java read_uncommitted read %r, want every record %r" % (got_u, every))
    # Nothing is open: the last stable offset is the high watermark, and each
    # transaction wrote one control record (its marker) on each partition.
    check(ends_c == ends_u, "end offsets: read_committed %r, read_uncommitted %r (no transaction is open)"
          % (ends_c, ends_u))
    for p in range(partitions):
        check(ends_u[p] == len(every[p]) + len(plan),
              "partition %d ends at %d: %d records and %d markers would make %d"
              % (p, ends_u[p], len(every[p]), len(plan), len(every[p]) + len(plan)))
    rd = read_all(broker, topic, list(range(partitions)), "read_committed", expect=sum(map(len, want.values())))
    ctx.observe("librdkafka read_committed reads", rd)
    check(rd == want, "librdkafka read_committed read %r, want %r" % (rd, want))
    broker.check_alive()


# What each call of a fenced producer fails with (the innermost cause), by the
# transaction version the client ran; the same for Kafka 4.4 and runnel. An
# old epoch on Produce is abortable (KIP-588: InvalidProducerEpochException),
# so the application aborts, and EndTxn tells it it is fenced. Between
# transactions, a version 1 client adds the partition first (AddPartitionsToTxn)
# and the coordinator fences it there; a version 2 client goes straight to
# Produce (KIP-890), which meets the bumped epoch.
FENCED_OUTCOMES = {
    1: {"zombie-send": OLD_EPOCH, "zombie-commit": OLD_EPOCH, "zombie-abort": FENCED,
        "idle-send": FENCED, "idle-commit": FENCED},
    2: {"zombie-send": OLD_EPOCH, "zombie-commit": OLD_EPOCH, "zombie-abort": FENCED,
        "idle-send": OLD_EPOCH, "idle-commit": OLD_EPOCH, "idle-abort": FENCED},
}


def zombie_story(ctx, broker, topic, txn_id):
    """The zombie step; checks each fenced call failed as Kafka fails it. Returns the version that ran."""
    events = java_run(ctx, "zombie", broker, topic, txn_id)
    versions = {e["v2"] for e in events if "v2" in e}
    check(len(versions) == 1, "the new producers ran transaction versions %r" % versions)
    version = {True: 2, False: 1, None: None}[versions.pop()]
    failed = {e["event"]: e["outcome"] for e in events if "outcome" in e}
    ctx.note("the fenced producers' calls (%s)" % txn_id, failed)
    for name, o in failed.items():
        check(not o["ok"], "the fenced producer's %s succeeded" % name)
    innermost = {name: o["classes"][-1] for name, o in failed.items()}
    ctx.observe("transaction version %s: what the fenced producers' calls fail with" % version, innermost)
    if version is None:
        # TransactionManager's internals moved: at least the fencing must show.
        check(FENCED in innermost.values(), "no call of a fenced producer failed with ProducerFencedException: "
              "%r" % innermost)
    else:
        want = FENCED_OUTCOMES[version]
        check(innermost == want, "transaction version %d: the fenced producers' calls failed with %r, want %r "
              "(as Kafka 4.4)" % (version, innermost, want))
    return version


def scenario_java_zombie(ctx):
    """A second producer with the same transactional.id fences the first: ProducerFencedException."""
    broker = ctx.broker()
    topic = "jz-events"
    create_topics(broker, [(topic, 2, None)])
    txn_ids = ["java-zombie"]
    version = zombie_story(ctx, broker, topic, txn_ids[0])
    if version == 2:
        # Kafka 4.4: version 1 too, which is what runnel offers, on the same
        # broker after kafka-features.sh downgrade.
        run_tool(ctx, "kafka-features", "--bootstrap-server", broker.bootstrap, "downgrade",
                 "--feature", "transaction.version=1")
        txn_ids.append("java-zombie-v1")
        check(zombie_story(ctx, broker, topic, txn_ids[1]) == 1,
              "after the downgrade the Java client still ran transaction version 2")
        ctx.say("fenced producers fail alike at transaction versions 2 and 1 (after kafka-features downgrade)")
    else:
        ctx.say("fenced producers fail as Kafka's do at transaction version %s" % version)

    (got_c, _), (got_u, _) = consume_both(ctx, broker, topic, 2)
    for t in txn_ids:  # each round on its own: the second is Kafka's only

        def mine(values):
            return [v for v in values if v.startswith(t + "-") and not any(
                o != t and o.startswith(t) and v.startswith(o + "-") for o in txn_ids)]
        ctx.observe("Java read_committed reads of %s's round" % t, {p: mine(v) for p, v in got_c.items()})
        ctx.observe("Java read_uncommitted reads of %s's round, sorted" % t,
                    {p: sorted(mine(v)) for p, v in got_u.items()})
    want = {p: ["%s%s-fresh-%d" % (t, idle, p) for t in txn_ids for idle in ("", "-idle")] for p in (0, 1)}
    check(got_c == want, "Java read_committed read %r, want only the new producers' records %r" % (got_c, want))
    zombie = sorted(v for vs in got_u.values() for v in vs if "fresh" not in v)
    check(zombie == sorted("%s-%d" % (t, i) for t in txn_ids for i in range(4)),
          "Java read_uncommitted read the fenced producers' %r, want the four each sent before it was fenced "
          "(and not what it sent after)" % zombie)
    rd = read_all(broker, topic, [0, 1], "read_committed", expect=sum(map(len, want.values())))
    check(rd == want, "librdkafka read_committed read %r, want %r" % (rd, want))
    broker.check_alive()


def scenario_java_idempotent(ctx):
    """The Java default producer is idempotent: one producer id, gapless sequences, each record once."""
    broker = ctx.broker()
    topic, partitions, n = "ji-events", 3, 3000
    create_topics(broker, [(topic, partitions, None)])
    events = java_run(ctx, "idempotent-produce", broker, topic, partitions, n)
    sent = named(events, "sent")
    check(len(sent) == n, "%d records acknowledged, want %d" % (len(sent), n))
    (_, _), (got, ends) = consume_both(ctx, broker, topic, partitions)
    ctx.observe("acknowledged, by partition (offset, value)",
                {p: records_summary(sorted((e["o"], e["value"]) for e in sent if e["p"] == p))
                 for p in range(partitions)})
    ctx.observe("read back, by partition, and the end offsets",
                [{p: records_summary(v) for p, v in got.items()}, ends])
    for p in range(partitions):
        mine = sorted((e["o"], e["value"]) for e in sent if e["p"] == p)
        check([o for o, _ in mine] == list(range(len(mine))),
              "partition %d: acknowledged offsets %r..., want 0 on without gaps" % (p, [o for o, _ in mine][:10]))
        check(got[p] == [v for _, v in mine], "partition %d read back %d records, %d acknowledged (first %r)"
              % (p, len(got[p]), len(mine), got[p][:3]))
        check(ends[p] == len(mine), "partition %d ends at %d, want %d" % (p, ends[p], len(mine)))
        pids = set()
        next_sequence = 0
        for b in disk_batches(broker, topic, p):
            pids.add(b["producer_id"])
            check(b["producer_id"] >= 0 and b["producer_epoch"] >= 0,
                  "%s-%d: batch at offset %d has producer id %d epoch %d, want the producer's id"
                  % (topic, p, b["base_offset"], b["producer_id"], b["producer_epoch"]))
            check(b["base_sequence"] == next_sequence, "%s-%d: batch at offset %d has base sequence %d, want %d"
                  % (topic, p, b["base_offset"], b["base_sequence"], next_sequence))
            next_sequence += b["count"]
        check(len(pids) == 1, "%s-%d: producer ids %r, want one" % (topic, p, sorted(pids)))
    broker.check_alive()


SCENARIOS = [
    ("java_txn", scenario_java_txn),
    ("java_zombie", scenario_java_zombie),
    ("java_idempotent", scenario_java_idempotent),
]
