"""compat-tests/differences.py - where runnel answers differently from Apache Kafka on purpose.

compare.py sets each scenario's observations against runnel beside the same
scenario's against Apache Kafka 4.4; any difference fails the scenario's
cells in the matrix, unless it is listed here with the reason it is right.
Each entry names a scenario and an observation's path (the key, narrowed
by compare.py to where the values differ: `key["retention.ms"][1]`), as
patterns where `*` stands for anything and every other character for
itself, and says why. A difference that is a fault of runnel
does not belong here: fix runnel.

Values a broker generates afresh on every run (cluster ids, topic ids,
member ids, ports, timestamps) are never observed raw: the scenarios
normalise them first (their shape, or whether two of them agree), so they
need no entry.
"""

import re

# (scenario pattern, observation key pattern, why the two brokers differ)
INTENTIONAL = [
    # Kafka's own state and features runnel does not have.
    ("*", '*["min.insync.replicas"]*',
     "Kafka 4.4 formats its cluster with a cluster-wide dynamic min.insync.replicas=1 (the bootstrap "
     "record of KIP-966's eligible leader replicas), so it reports that key from DYNAMIC_DEFAULT_BROKER_CONFIG; "
     "runnel has no dynamic broker configs and reports the same value as DEFAULT_CONFIG"),
    ("kafka_topics", '*["fields"]["Configs"]',
     "kafka-topics lists a topic's non-default configs: Kafka's include the cluster-wide dynamic "
     "min.insync.replicas=1 (see above), runnel's only the topic's own"),
    ("kafka_topics", '*["Elr"]', "runnel does not implement DescribeTopicPartitions (API 75, KIP-966): "
     "kafka-topics falls back to Metadata and prints N/A for the eligible leader replicas"),
    ("kafka_topics", '*["LastKnownElr"]', "as Elr: no DescribeTopicPartitions (API 75) in runnel"),
    ("java_zombie", "transaction version 2*",
     "Kafka 4.4 finalizes transaction.version 2 (KIP-890 part 2), which runnel does not offer: the Java "
     "client runs version 1 against runnel; against Kafka the story runs at version 2 and again at 1 after "
     "kafka-features downgrade, and version 1's outcomes are compared"),
    ("java_zombie", "*java-zombie-v1*", "the story's second round, at transaction version 1 after kafka-features "
     "downgrade, runs against Kafka only (runnel is at version 1 from the start)"),
    ("kafka_configs", "broker num.network.threads*",
     "runnel's default num.network.threads is the machine's core count (one reactor thread per core); "
     "Kafka's is 3"),
    # Where runnel answers better than Kafka on purpose (README).
    ("slow_clients", "a frame trickling in is closed",
     "runnel closes a connection whose frame has not arrived whole within connections.max.idle.ms; Kafka "
     "counts every byte as activity and keeps it (README, Configuration)"),
    ("connection_flood", "every flood connection connected and was answered",
     "Kafka 4.4's acceptor falls behind a flood of 5,000 connections and leaves some unanswered within the "
     "20 s; runnel answers them all"),
    ("hostile_table", "*bomb*",
     "a batch that decompresses to gigabytes: runnel stops at its bound and answers MESSAGE_TOO_LARGE; "
     "Kafka 4.4 decompresses much of it and answers UNKNOWN_SERVER_ERROR (gzip, zstd) or INVALID_RECORD (lz4)"),
    ("disk_full", "the broker serves on with its disk full",
     "on a full disk Kafka takes its only log dir offline and shuts down; runnel refuses the appends that "
     "do not fit and serves on (README, Durability)"),
    ("disk_full", "after *", "Kafka has shut down by then (see above): freeing space and the restart are "
     "runnel's story only"),
]


def matches(pattern, text):
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), text, re.S) is not None


def reason(scenario, path):
    """Why scenario's observation at path may differ between the brokers, or None."""
    for scenario_pattern, path_pattern, why in INTENTIONAL:
        if matches(scenario_pattern, scenario) and matches(path_pattern, path):
            return why
    return None
