"""compat-tests/java_tools.py - Apache Kafka 4.4's own command-line tools, as an operator uses them.

    kafka_topics           kafka-topics creates a topic with partitions and configs, lists and
                           describes it, grows it, is refused a shrink, deletes it
    kafka_configs          kafka-configs adds and deletes topic configs, each change read back
                           (dynamic and --all), and describes the broker's static configs
    console_idempotent     kafka-console-producer with its defaults (idempotent: InitProducerId,
                           sequence numbers) fed keyed lines; kafka-console-consumer prints them
                           back, in order, keys split at the first separator
    console_plain          the same with enable.idempotence=false
    kafka_consumer_groups  a console consumer in a group reads part of a topic; kafka-consumer-groups
                           lists it, shows offsets and lag per partition, resets it to the
                           earliest offsets (the group then reads everything again), deletes
                           the offsets of one partition, deletes the group
    kafka_get_offsets      kafka-get-offsets (GetOffsetShell): earliest, latest, max timestamp
                           and by time, against what two producer runs wrote

Each tool runs as its bin/kafka-*.sh script runs it in the Kafka 4.4
distribution: kafka-run-class.sh's java command (its heap and G1 flags) with
the jars tools/deps.sh fetches (build/kafka-lib/, or KAFKA_LIB) and the
script's main class, with the tools' logging (WARN and above on stderr). Each
run is bounded by TOOL_TIMEOUT_S. The options are Kafka 4.4's current names
(--command-property, --reader-property, --formatter-property); the older
--producer-property and --property still work there, with a deprecation
warning.

The Java producer is idempotent by default (enable.idempotence=true since
Kafka 3.0), so console_idempotent needs InitProducerId and producer state on
the broker; every other story here produces with enable.idempotence=false.
"""

import os
import re
import shutil
import struct
import subprocess
import time

from groups import GROUP_OVERRIDES
from harness import BROKER_ID, SEGMENT_BYTES_DEFAULT, Failure, check, records_summary
from logs import KAFKA_LIB

TOOL_TIMEOUT_S = 30
KAFKA_TOOLS_JAR = "kafka-tools-4.4.0.jar"

# bin/kafka-<name>.sh -> the class it hands to kafka-run-class.sh (Kafka 4.4).
TOOL_CLASSES = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
}
# kafka-run-class.sh's heap is 256 MB; the console scripts ask for 512 MB.
TOOL_HEAP = {"kafka-console-producer": "-Xmx512M", "kafka-console-consumer": "-Xmx512M"}
JVM_PERFORMANCE_OPTS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                        "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                        "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
# What the distribution's tools logging config says: warnings and errors, on stderr.
TOOLS_LOG4J2 = """\
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""
TRANSCRIPT_BYTES = 6000

NOT_IDEMPOTENT = ["--command-property", "enable.idempotence=false"]
KEYED_LINES = ["--reader-property", "parse.key=true", "--reader-property", "key.separator=:"]


# ---------------------------------------------------------------------------
# Running a tool


def tool_argv(ctx, name, args):
    java = shutil.which("java")
    check(java, "java is not installed (bash tools/deps.sh test installs openjdk-17-jdk-headless)")
    check(os.path.isfile(os.path.join(KAFKA_LIB, KAFKA_TOOLS_JAR)),
          "no %s in %s (bash tools/deps.sh test fetches Kafka's jars)" % (KAFKA_TOOLS_JAR, KAFKA_LIB))
    log4j = ctx.path("tools-log4j2.properties")
    if not os.path.exists(log4j):
        with open(log4j, "w") as f:
            f.write(TOOLS_LOG4J2)
    return ([java, TOOL_HEAP.get(name, "-Xmx256M")] + JVM_PERFORMANCE_OPTS +
            ["-Dlog4j2.configurationFile=" + log4j, "-cp", os.path.join(KAFKA_LIB, "*"),
             TOOL_CLASSES[name]] + list(args))


def _trim(text):
    if len(text) <= TRANSCRIPT_BYTES:
        return text
    half = TRANSCRIPT_BYTES // 2
    return "%s\n... (%d characters left out) ...\n%s" % (text[:half], len(text) - 2 * half, text[-half:])


def run_tool(ctx, name, *args, stdin_text=None, expect_exit=0):
    """bin/<name>.sh ARGS, fed stdin_text; (exit code, stdout, stderr), all in the transcript.

    Several tools exit 0 after printing an error, so callers check what was
    printed; expect_exit=None accepts any exit code.
    """
    argv = tool_argv(ctx, name, args)
    label = "$ %s %s" % (name, " ".join(args))
    stdin = subprocess.DEVNULL if stdin_text is None else subprocess.PIPE
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ctx.workdir)
    try:
        out, err = proc.communicate(None if stdin_text is None else stdin_text.encode("utf-8"),
                                    timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        ctx.note(label + " (timed out)", "stdout:\n%s\nstderr:\n%s"
                 % (_trim(out.decode("utf-8", "replace")), _trim(err.decode("utf-8", "replace"))))
        raise Failure("%s did not finish within %d s" % (name, TOOL_TIMEOUT_S))
    finally:
        if proc.poll() is None:  # the scenario's own timeout interrupted it: this JVM only
            proc.kill()
            proc.wait()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    ctx.note("%s (exit %d, %.1f s)" % (label, proc.returncode, time.monotonic() - started),
             "stdout:\n%s\nstderr:\n%s" % (_trim(out), _trim(err)))
    if expect_exit is not None:
        check(proc.returncode == expect_exit, "%s %s exited with %d, want %d; it said:\n      %s"
              % (name, " ".join(args), proc.returncode, expect_exit, _said(err or out)))
    return proc.returncode, out, err


def run_tools(ctx, runs):
    """Read-only tools side by side: runs is [(name, args)]; [(exit code, stdout, stderr)]."""
    return ctx.run_parallel([tool_argv(ctx, name, args) for name, args in runs], timeout_s=TOOL_TIMEOUT_S)


def _said(text, lines=12):
    """The lines of a tool's output worth quoting (no stack frames)."""
    kept = [line for line in text.strip().splitlines() if not line.lstrip().startswith("at ")]
    return "\n      ".join(kept[:lines]) or "(nothing)"


def bootstrap(broker):
    return ["--bootstrap-server", broker.bootstrap]


def create_topic(ctx, broker, topic, partitions, *configs):
    args = bootstrap(broker) + ["--create", "--topic", topic, "--partitions", str(partitions)]
    for kv in configs:
        args += ["--config", kv]
    _, out, _ = run_tool(ctx, "kafka-topics", *args)
    check("Created topic %s." % topic in out, "kafka-topics --create %s printed %r" % (topic, out.strip()))


def eventually_tool(what, fn, timeout_s=10.0, interval_s=0.2):
    """Asks again (a tool run each time) until fn returns a true value, for at most timeout_s.

    Kafka applies an admin change to its metadata a moment after answering.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    for _ in range(100):
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise Failure("%s: still not so after %.0f s (last: %r)" % (what, timeout_s, last))


# ---------------------------------------------------------------------------
# Reading what the tools print


def parse_topic_describe(out):
    """kafka-topics --describe: {topic: {"fields": {...}, "configs": {...}, "partitions": {p: {...}}}}."""
    topics = {}
    for line in out.splitlines():
        if not line.strip().startswith("Topic:"):
            continue
        fields = {}
        for part in line.strip().split("\t"):
            key, sep, value = part.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        name = fields.get("Topic")
        if "PartitionCount" in fields:
            configs = {}
            for kv in filter(None, fields.get("Configs", "").split(",")):
                k, _, v = kv.partition("=")
                configs[k] = v
            topics[name] = {"fields": fields, "configs": configs, "partitions": {}}
        elif "Partition" in fields:
            check(name in topics, "kafka-topics --describe: partition line before its topic line: %r" % line)
            topics[name]["partitions"][int(fields["Partition"])] = fields
    return topics


CONFIG_LINE = re.compile(r"^  (\S+?)=(.*) sensitive=(true|false) synonyms=\{(.*)\}$")


def parse_config_describe(out):
    """kafka-configs --describe: {name: (value, [(synonym source, synonym name, value)])}."""
    configs = {}
    for line in out.splitlines():
        m = CONFIG_LINE.match(line)
        if not m:
            continue
        synonyms = []
        for s in filter(None, m.group(4).split(", ")):
            source, _, kv = s.partition(":")
            k, _, v = kv.partition("=")
            synonyms.append((source, k, v))
        configs[m.group(1)] = (m.group(2), synonyms)
    return configs


def parse_table(out, first_header):
    """A kafka-consumer-groups table whose header row starts with first_header: [{column: cell}]."""
    rows = []
    header = None
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] == first_header:
            header = cells
        elif header and cells:
            check(len(cells) == len(header), "kafka-consumer-groups row %r under header %r" % (line, header))
            rows.append(dict(zip(header, cells)))
    return rows


def parse_offsets(out):
    """kafka-get-offsets: {(topic, partition): offset} from its topic:partition:offset lines."""
    offsets = {}
    for line in out.splitlines():
        parts = line.strip().rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].lstrip("-").isdigit():
            offsets[(parts[0], int(parts[1]))] = int(parts[2])
    return offsets


def parse_consumed(out):
    """Console consumer lines printed with print.timestamp, print.partition, print.offset and
    print.key (tab-separated): [(partition, offset, timestamp ms, key, value)]."""
    records = []
    for line in out.splitlines():
        cells = line.split("\t", 4)
        check(len(cells) == 5 and cells[0].startswith("CreateTime:") and cells[1].startswith("Partition:")
              and cells[2].startswith("Offset:"), "console consumer line not understood: %r" % line)
        records.append((int(cells[1].split(":")[1]), int(cells[2].split(":")[1]),
                        int(cells[0].split(":")[1]), cells[3], cells[4]))
    return records


PRINT_EVERYTHING = ["--formatter-property", "print.timestamp=true", "--formatter-property", "print.partition=true",
                    "--formatter-property", "print.offset=true", "--formatter-property", "print.key=true"]


def processed_count(err):
    m = re.search(r"Processed a total of (\d+) messages", err)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# Where the Java producer puts a keyed record: its default partitioner takes
# murmur2 of the key bytes (seed 0x9747b28c), positive, modulo the partition
# count. Computed here so the stories know each partition's count beforehand.


def murmur2(data):
    mask = 0xFFFFFFFF
    m = 0x5BD1E995
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[whole:]
    if rest:
        for i in reversed(range(len(rest))):
            h ^= rest[i] << (8 * i)
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def java_partition(key, partition_count):
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partition_count


def keyed_lines(prefix, count, key_count):
    """count "key:value" lines over key_count keys; each value names its line number."""
    return [("%s-%d" % (prefix, i % key_count), "line %d of %d" % (i, count)) for i in range(count)]


def per_partition(records, partition_count):
    counts = [0] * partition_count
    for key, _ in records:
        counts[java_partition(key, partition_count)] += 1
    return counts


# ---------------------------------------------------------------------------
# Stories


def scenario_kafka_topics(ctx):
    """kafka-topics: create with partitions and configs, list, describe, grow, delete."""
    broker = ctx.broker()
    b = bootstrap(broker)
    create_topic(ctx, broker, "tools-orders", 3, "retention.ms=3600000", "cleanup.policy=compact")

    _, out, _ = run_tool(ctx, "kafka-topics", *b, "--list")
    ctx.observe("--list", out.split())
    check("tools-orders" in out.split(), "kafka-topics --list: %r, want tools-orders in it" % out.split())

    def describe(partitions, when):
        _, out, _ = run_tool(ctx, "kafka-topics", *b, "--describe", "--topic", "tools-orders")
        topics = parse_topic_describe(out)
        # Every field but the generated topic id.
        ctx.observe("--describe %s" % when, {name: {"fields": {k: v for k, v in t["fields"].items() if k != "TopicId"},
                                                    "partitions": t["partitions"]} for name, t in topics.items()})
        check(list(topics) == ["tools-orders"], "kafka-topics --describe described %r" % list(topics))
        t = topics["tools-orders"]
        check(t["fields"].get("PartitionCount") == str(partitions) and t["fields"].get("ReplicationFactor") == "1",
              "kafka-topics --describe: %r, want PartitionCount %d, ReplicationFactor 1" % (t["fields"], partitions))
        check(t["configs"].get("retention.ms") == "3600000" and t["configs"].get("cleanup.policy") == "compact",
              "kafka-topics --describe Configs: %r, want retention.ms=3600000 and cleanup.policy=compact"
              % t["configs"])
        check(sorted(t["partitions"]) == list(range(partitions)),
              "kafka-topics --describe partitions %r, want 0..%d" % (sorted(t["partitions"]), partitions - 1))
        for p, fields in sorted(t["partitions"].items()):
            check((fields.get("Leader"), fields.get("Replicas"), fields.get("Isr")) == (str(BROKER_ID),) * 3,
                  "kafka-topics --describe partition %d: %r, want leader, replicas and isr = %d"
                  % (p, fields, BROKER_ID))
        return t

    describe(3, "after --create")

    # Creating it again is refused, and changes nothing.
    code, out, err = run_tool(ctx, "kafka-topics", *b, "--create", "--topic", "tools-orders", "--partitions", "1",
                              expect_exit=None)
    ctx.observe("--create of an existing topic: exit, says it exists", [code, "already exists" in out + err])
    check("Topic 'tools-orders' already exists." in out + err,
          "kafka-topics --create of an existing topic said:\n      %s" % _said(out + err))

    _, out, _ = run_tool(ctx, "kafka-topics", *b, "--alter", "--topic", "tools-orders", "--partitions", "5")
    describe(5, "after --alter --partitions 5")

    # A topic never shrinks.
    code, out, err = run_tool(ctx, "kafka-topics", *b, "--alter", "--topic", "tools-orders", "--partitions", "2",
                              expect_exit=None)
    ctx.observe("--alter --partitions 2 of 5: exit, refused with InvalidPartitionsException",
                [code, "InvalidPartitionsException" in out + err])
    check(code != 0 and "InvalidPartitionsException" in out + err,
          "kafka-topics --alter --partitions 2 of a 5-partition topic: exit %d, said:\n      %s"
          % (code, _said(out + err)))
    describe(5, "after the refused shrink")

    run_tool(ctx, "kafka-topics", *b, "--delete", "--topic", "tools-orders")

    def gone():
        _, out, _ = run_tool(ctx, "kafka-topics", *b, "--list")
        return "tools-orders" not in out.split()

    eventually_tool("kafka-topics --list no longer shows tools-orders after --delete", gone)
    code, out, err = run_tool(ctx, "kafka-topics", *b, "--describe", "--topic", "tools-orders", expect_exit=None)
    ctx.observe("--describe of the deleted topic: exit, says it does not exist",
                [code, "Topic 'tools-orders' does not exist" in out + err])
    check(code != 0 and "Topic 'tools-orders' does not exist" in out + err,
          "kafka-topics --describe of the deleted topic: exit %d, said:\n      %s" % (code, _said(out + err)))
    broker.check_alive()


def scenario_kafka_configs(ctx):
    """kafka-configs: topic configs added and deleted, each read back; the broker's own configs."""
    broker = ctx.broker(overrides=["log.retention.hours=48"])
    b = bootstrap(broker)
    topic = ["--entity-type", "topics", "--entity-name", "tools-ledger"]
    create_topic(ctx, broker, "tools-ledger", 1, "cleanup.policy=compact")

    def describe_topic(*extra, when):
        _, out, _ = run_tool(ctx, "kafka-configs", *b, *topic, "--describe", *extra)
        configs = parse_config_describe(out)
        ctx.observe("tools-ledger --describe %s%s (value, synonyms)" % (" ".join(extra) + " " if extra else "", when),
                    configs)
        return configs

    def check_value(configs, name, value, source, what):
        """name=value, its first synonym from source (None: whatever synonyms it has)."""
        got = configs.get(name)
        check(got is not None, "%s: no %s in %r" % (what, name, sorted(configs)))
        check(got[0] == value and (source is None or got[1][:1] and got[1][0][0] == source),
              "%s: %s=%s with synonyms %r, want %s from %s" % (what, name, got[0], got[1], value, source))

    configs = describe_topic(when="after --create --config")
    check(sorted(configs) == ["cleanup.policy"], "the topic's dynamic configs are %r, want only cleanup.policy"
          % sorted(configs))
    check_value(configs, "cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG", "after --create --config")

    _, out, _ = run_tool(ctx, "kafka-configs", *b, *topic, "--alter",
                         "--add-config", "retention.ms=7200000,max.message.bytes=2000000")
    check("Completed updating config for topic tools-ledger." in out, "kafka-configs --alter said %r" % out.strip())
    configs = describe_topic(when="after --add-config")
    check(sorted(configs) == ["cleanup.policy", "max.message.bytes", "retention.ms"],
          "after --add-config the dynamic configs are %r" % sorted(configs))
    check_value(configs, "retention.ms", "7200000", "DYNAMIC_TOPIC_CONFIG", "after --add-config")
    check_value(configs, "max.message.bytes", "2000000", "DYNAMIC_TOPIC_CONFIG", "after --add-config")
    check_value(configs, "cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG", "after --add-config (incremental)")

    run_tool(ctx, "kafka-configs", *b, *topic, "--alter", "--delete-config", "cleanup.policy")
    configs = describe_topic(when="after --delete-config")
    check(sorted(configs) == ["max.message.bytes", "retention.ms"],
          "after --delete-config cleanup.policy the dynamic configs are %r" % sorted(configs))
    configs = describe_topic("--all", when="after --delete-config")
    check_value(configs, "cleanup.policy", "delete", "DEFAULT_CONFIG", "--all after --delete-config")
    check_value(configs, "retention.ms", "7200000", "DYNAMIC_TOPIC_CONFIG", "--all")
    check_value(configs, "segment.bytes", SEGMENT_BYTES_DEFAULT, "DEFAULT_CONFIG", "--all")

    # An unknown key is refused, and nothing changes.
    code, out, err = run_tool(ctx, "kafka-configs", *b, *topic, "--alter", "--add-config", "no.such.config=1",
                              expect_exit=None)
    ctx.observe("--add-config no.such.config=1: exit, refused with InvalidConfigurationException",
                [code, "InvalidConfigurationException" in out + err])
    check(code != 0 and "InvalidConfigurationException" in out + err,
          "kafka-configs --add-config no.such.config=1: exit %d, said:\n      %s" % (code, _said(out + err)))

    # A topic without overrides inherits the broker's log.retention.hours=48.
    # (Kafka 4.4 lists no synonym for it; runnel lists the broker key.)
    create_topic(ctx, broker, "tools-inherits", 1)
    _, out, _ = run_tool(ctx, "kafka-configs", *b, "--entity-type", "topics", "--entity-name", "tools-inherits",
                         "--describe", "--all")
    configs = parse_config_describe(out)
    ctx.observe("tools-inherits --describe --all (value, synonyms)", configs)
    check_value(configs, "retention.ms", str(48 * 3600 * 1000), None,
                "tools-inherits --all (broker log.retention.hours=48)")

    # The broker: no dynamic configs; --all shows what it was started with.
    node = ["--entity-type", "brokers", "--entity-name", str(BROKER_ID)]
    _, out, _ = run_tool(ctx, "kafka-configs", *b, *node, "--describe")
    ctx.observe("broker --describe", out.split("\n"))
    check("Dynamic configs for broker %d are:" % BROKER_ID in out and not parse_config_describe(out),
          "kafka-configs --describe of broker %d: %r, want no dynamic configs" % (BROKER_ID, out.strip()))
    _, out, _ = run_tool(ctx, "kafka-configs", *b, *node, "--describe", "--all")
    configs = parse_config_describe(out)
    # Listeners and log.dirs name this run's port and directory; node.id,
    # num.partitions, process.roles and the rebalance delay the reference
    # broker's start script sets in its server.properties, as Kafka's own does.
    ctx.observe("broker --describe --all, keys a topic inherits and one set at start (value, synonyms)",
                {k: configs.get(k) for k in ("log.retention.hours", "log.retention.ms", "log.retention.minutes",
                                             "log.segment.bytes", "log.cleanup.policy", "message.max.bytes",
                                             "auto.create.topics.enable", "default.replication.factor",
                                             "compression.type", "log.roll.hours", "log.roll.ms",
                                             "log.flush.interval.ms", "log.flush.scheduler.interval.ms")})
    ctx.observe("broker num.network.threads (value, synonyms)", configs.get("num.network.threads"))
    check_value(configs, "log.retention.hours", "48", "STATIC_BROKER_CONFIG", "broker --all")
    check_value(configs, "num.network.threads", "2", "STATIC_BROKER_CONFIG", "broker --all")
    check_value(configs, "advertised.listeners", "PLAINTEXT://" + broker.bootstrap, "STATIC_BROKER_CONFIG",
                "broker --all")
    check_value(configs, "log.segment.bytes", SEGMENT_BYTES_DEFAULT, "DEFAULT_CONFIG", "broker --all")
    broker.check_alive()


def console_story(ctx, producer_options):
    broker = ctx.broker()
    b = bootstrap(broker)
    create_topic(ctx, broker, "tools-console", 1)
    # Values hold the separator too: the key ends at its first occurrence.
    records = [("sku-%d" % (i % 7), "order %d: %d units" % (i, i % 5 + 1)) for i in range(200)]
    lines = ["%s:%s" % kv for kv in records]
    run_tool(ctx, "kafka-console-producer", *b, "--topic", "tools-console", *KEYED_LINES, *producer_options,
             stdin_text="\n".join(lines) + "\n")

    consumer = run_tools(ctx, [
        ("kafka-console-consumer", b + ["--topic", "tools-console", "--from-beginning",
                                        "--max-messages", str(len(lines)), "--timeout-ms", "20000",
                                        "--formatter-property", "print.key=true",
                                        "--formatter-property", "key.separator=:"]),
        ("kafka-get-offsets", b + ["--topic", "tools-console", "--time", "-1"])])
    (_, out, err), (_, offsets_out, _) = consumer
    got = out.splitlines()
    ctx.observe("kafka-console-consumer prints", got)
    ctx.observe("kafka-get-offsets --time -1", sorted(parse_offsets(offsets_out).items()))
    check(processed_count(err) == len(lines), "kafka-console-consumer processed %r messages, want %d"
          % (processed_count(err), len(lines)))
    for i, (g, w) in enumerate(zip(got, lines)):
        check(g == w, "kafka-console-consumer line %d is %r, want %r (what the producer was given)" % (i, g, w))
    check(len(got) == len(lines), "kafka-console-consumer printed %d lines, want %d" % (len(got), len(lines)))
    # Exactly what was sent was written: nothing twice.
    end = parse_offsets(offsets_out)
    check(end == {("tools-console", 0): len(lines)}, "kafka-get-offsets --time -1: %r, want tools-console:0:%d"
          % (end, len(lines)))
    broker.check_alive()


def scenario_console_idempotent(ctx):
    """kafka-console-producer with its defaults (idempotent) piped to kafka-console-consumer."""
    console_story(ctx, [])


def scenario_console_plain(ctx):
    """kafka-console-producer with enable.idempotence=false piped to kafka-console-consumer."""
    console_story(ctx, NOT_IDEMPOTENT)


def scenario_kafka_consumer_groups(ctx):
    """kafka-consumer-groups: list, describe offsets and lag, reset to earliest, delete offsets, delete."""
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    b = bootstrap(broker)
    topic, group, partitions = "tools-payments", "tools-billing", 3
    create_topic(ctx, broker, topic, partitions)
    records = keyed_lines("customer", 60, 12)
    end = per_partition(records, partitions)
    check(all(end), "the story wants records in every partition: %r" % end)
    run_tool(ctx, "kafka-console-producer", *b, "--topic", topic, *KEYED_LINES, *NOT_IDEMPOTENT,
             stdin_text="".join("%s:%s\n" % kv for kv in records))

    def consume(count):
        _, out, err = run_tool(ctx, "kafka-console-consumer", *b, "--topic", topic, "--group", group,
                               "--from-beginning", "--max-messages", str(count), "--timeout-ms", "20000",
                               *PRINT_EVERYTHING)
        got = parse_consumed(out)
        check(len(got) == count and processed_count(err) == count,
              "kafka-console-consumer in %s read %d records (said %r), want %d"
              % (group, len(got), processed_count(err), count))
        for p, offset, _, key, _ in got:
            check(java_partition(key, partitions) == p,
                  "record %s@%d has key %r, which the producer sends to partition %d"
                  % (p, offset, key, java_partition(key, partitions)))
        return got

    def offsets_table(*extra):
        _, out, err = run_tool(ctx, "kafka-consumer-groups", *b, "--describe", "--group", group, *extra)
        rows = parse_table(out, "GROUP")
        check(all(r["GROUP"] == group and r["TOPIC"] == topic for r in rows),
              "kafka-consumer-groups --describe rows: %r" % rows)
        return {int(r["PARTITION"]): r for r in rows}

    def check_offsets(table, committed, what):
        check(sorted(table) == sorted(committed), "%s: partitions %r, want %r" % (what, sorted(table), sorted(committed)))
        for p, row in sorted(table.items()):
            want = (str(committed[p]), str(end[p]), str(end[p] - committed[p]))
            got = (row["CURRENT-OFFSET"], row["LOG-END-OFFSET"], row["LAG"])
            check(got == want, "%s partition %d: CURRENT-OFFSET, LOG-END-OFFSET, LAG = %r, want %r"
                  % (what, p, got, want))

    # Part of the topic: the consumer commits, on leaving, the offset after
    # the last record it printed in each partition.
    first = consume(25)
    # The order across partitions is the fetches'; within one it is the log's.
    ctx.observe("the group reads 25 records (partition, offset, key, value)",
                sorted([p, o, k, v] for p, o, _, k, v in first))
    read = [0] * partitions
    for p, offset, _, _, _ in first:
        check(offset == read[p], "the group read partition %d out of order: offset %d after %d records"
              % (p, offset, read[p]))
        read[p] += 1

    (_, listed, _), (_, state_out, _) = run_tools(ctx, [
        ("kafka-consumer-groups", b + ["--list"]),
        ("kafka-consumer-groups", b + ["--describe", "--group", group, "--state"])])
    check(group in listed.split(), "kafka-consumer-groups --list: %r, want %s in it" % (listed.split(), group))
    state = parse_table(state_out, "GROUP")
    ctx.observe("--list", sorted(listed.split()))
    ctx.observe("--describe --state after the consumer left (without the coordinator)",
                [{k: v for k, v in r.items() if k != "COORDINATOR"} for r in state])
    check(len(state) == 1 and state[0]["STATE"] == "Empty" and state[0]["#MEMBERS"] == "0",
          "kafka-consumer-groups --describe --state after the consumer left: %r, want Empty with 0 members"
          % state)
    table = offsets_table()
    ctx.observe("--describe after reading 25 of 60", table)
    # A partition the consumer never had a position in has no committed offset, and no row.
    committed = {p: read[p] for p in range(partitions) if read[p] or p in table}
    check_offsets(table, committed, "after reading 25 of 60")

    _, out, _ = run_tool(ctx, "kafka-consumer-groups", *b, "--reset-offsets", "--group", group, "--topic", topic,
                         "--to-earliest", "--execute")
    reset = {int(r["PARTITION"]): r["NEW-OFFSET"] for r in parse_table(out, "GROUP")}
    ctx.observe("--reset-offsets --to-earliest --execute", parse_table(out, "GROUP"))
    check(reset == {p: "0" for p in range(partitions)}, "--reset-offsets --to-earliest --execute: %r" % reset)

    # The group starts again from the earliest offsets: the whole topic.
    again = consume(len(records))
    ctx.observe("after the reset the group reads", records_summary(sorted([p, o, k, v] for p, o, _, k, v in again)))
    check(sorted((p, o) for p, o, _, _, _ in again) == sorted((p, o) for p in range(partitions) for o in range(end[p])),
          "after the reset the group read %r, want every offset of every partition"
          % sorted((p, o) for p, o, _, _, _ in again))

    _, out, _ = run_tool(ctx, "kafka-consumer-groups", *b, "--delete-offsets", "--group", group,
                         "--topic", "%s:0" % topic)
    statuses = {(r["TOPIC"], r["PARTITION"]): r["STATUS"] for r in parse_table(out, "TOPIC")}
    ctx.observe("--delete-offsets of partition 0", parse_table(out, "TOPIC"))
    ctx.observe("--describe after --delete-offsets", offsets_table())
    check(statuses == {(topic, "0"): "Successful"}, "--delete-offsets %s:0 answered %r" % (topic, statuses))
    check_offsets(offsets_table(), {p: end[p] for p in range(1, partitions)},
                  "after reading everything and --delete-offsets of partition 0")

    _, out, _ = run_tool(ctx, "kafka-consumer-groups", *b, "--delete", "--group", group)
    ctx.observe("--delete said", out.strip().splitlines())
    check("Deletion of requested consumer groups ('%s') was successful." % group in out,
          "kafka-consumer-groups --delete said %r" % out.strip())

    def gone():
        _, out, _ = run_tool(ctx, "kafka-consumer-groups", *b, "--list")
        return group not in out.split()

    eventually_tool("kafka-consumer-groups --list no longer shows %s after --delete" % group, gone)
    _, out, err = run_tool(ctx, "kafka-consumer-groups", *b, "--describe", "--group", group, expect_exit=None)
    # DescribeGroups v6 (Kafka 4.x) answers GROUP_ID_NOT_FOUND; up to v5 a
    # deleted group is described as Dead, which the tool reports as not existing.
    check(not parse_table(out, "GROUP") and
          ("Consumer group '%s' does not exist." % group in out + err or
           "GroupIdNotFoundException: Group %s not found." % group in out + err),
          "kafka-consumer-groups --describe of the deleted group said:\n      %s" % _said(out + err))
    broker.check_alive()


def scenario_kafka_get_offsets(ctx):
    """kafka-get-offsets: earliest, latest, max timestamp and by time, per partition."""
    broker = ctx.broker()
    b = bootstrap(broker)
    topic, partitions = "tools-clicks", 3
    create_topic(ctx, broker, topic, partitions)
    morning = keyed_lines("page", 40, 9)
    afternoon = keyed_lines("page", 31, 9)
    before = per_partition(morning, partitions)
    after = per_partition(afternoon, partitions)
    check(all(before) and all(after), "the story wants records in every partition: %r %r" % (before, after))

    run_tool(ctx, "kafka-console-producer", *b, "--topic", topic, *KEYED_LINES, *NOT_IDEMPOTENT,
             stdin_text="".join("%s:%s\n" % kv for kv in morning))
    # The producer's clock is this machine's: every morning record was
    # stamped before the producer exited, every afternoon one after noon.
    time.sleep(0.05)
    noon_ms = int(time.time() * 1000)
    time.sleep(0.05)
    run_tool(ctx, "kafka-console-producer", *b, "--topic", topic, *KEYED_LINES, *NOT_IDEMPOTENT,
             stdin_text="".join("%s:%s\n" % kv for kv in afternoon))

    total = len(morning) + len(afternoon)
    results = run_tools(ctx, [
        ("kafka-console-consumer", b + ["--topic", topic, "--from-beginning", "--max-messages", str(total),
                                        "--timeout-ms", "20000"] + PRINT_EVERYTHING),
        ("kafka-get-offsets", b + ["--topic", topic, "--time", "-2"]),
        ("kafka-get-offsets", b + ["--topic", topic, "--time", "-1"]),
        ("kafka-get-offsets", b + ["--topic", topic, "--time", str(noon_ms)]),
        ("kafka-get-offsets", b + ["--topic", topic, "--time", "-3"]),
        ("kafka-get-offsets", b + ["--topic", topic, "--time", str(noon_ms + 3600 * 1000)])])
    records = parse_consumed(results[0][1])
    check(len(records) == total, "kafka-console-consumer read %d records, want %d" % (len(records), total))
    earliest, latest, at_noon, max_ts, later = (parse_offsets(r[1]) for r in results[1:])
    for what, got in (("--time -2", earliest), ("--time -1", latest), ("--time noon", at_noon),
                      ("--time an hour later", later)):
        ctx.observe(what, sorted(got.items()))

    def tp(values):
        return {(topic, p): v for p, v in values.items()}

    check(earliest == tp({p: 0 for p in range(partitions)}), "--time -2 (earliest): %r" % earliest)
    check(latest == tp({p: before[p] + after[p] for p in range(partitions)}),
          "--time -1 (latest): %r, want %r (per partition: %r before noon, %r after)"
          % (latest, tp({p: before[p] + after[p] for p in range(partitions)}), before, after))
    check(at_noon == tp({p: before[p] for p in range(partitions)}),
          "--time %d (noon): %r, want the first afternoon offsets %r" % (noon_ms, at_noon, tp(dict(enumerate(before)))))
    # Max timestamp: the first record carrying the partition's largest
    # timestamp, as the records themselves say.
    want_max = {}
    for p, offset, ts, _, _ in sorted(records):
        if (topic, p) not in want_max or ts > want_max[(topic, p)][1]:
            want_max[(topic, p)] = (offset, ts)
    # Which record holds the largest timestamp depends on the clock; whether the
    # answer is the first record holding it does not.
    ctx.observe("--time -3 answers the first record with the partition's largest timestamp",
                {"%s:%d" % k: max_ts.get(k) == v[0] for k, v in sorted(want_max.items())})
    check(max_ts == {k: v[0] for k, v in want_max.items()},
          "--time -3 (max timestamp): %r, want %r (offset, timestamp)" % (max_ts, want_max))
    for (_, p), (offset, _) in want_max.items():
        check(offset >= before[p], "partition %d: its newest record is at %d, among the morning ones" % (p, offset))
    # No record is that late: nothing to print.
    check(later == {}, "--time an hour from now: %r, want no offsets" % later)
    broker.check_alive()


SCENARIOS = [
    ("kafka_topics", scenario_kafka_topics),
    ("kafka_configs", scenario_kafka_configs),
    ("console_idempotent", scenario_console_idempotent),
    ("console_plain", scenario_console_plain),
    ("kafka_consumer_groups", scenario_kafka_consumer_groups),
    ("kafka_get_offsets", scenario_kafka_get_offsets),
]
