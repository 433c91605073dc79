"""compat-tests/matrix.py - the client x scenario matrix of a compat run.

Each scenario of the suite is one user's story told with one or more
clients; COVERS says which cells of the matrix (client, column) it proves.
run.py --results FILE writes what happened to each scenario against one
broker (pass, FAIL, skipped, with the reason) and the API keys that broker
advertised; this module turns one or two such files (runnel, and Apache
Kafka as the reference) into the matrix:

    python3 compat-tests/matrix.py RUNNEL.json [KAFKA.json] > build/compat-matrix.md

When the files come from conformance.py they also list the kinds of answers
tshark's Kafka dissector found malformed; those of runnel that Kafka's
answers do not share fail the run.

A cell passes when every scenario covering it passed; it is "not
advertised" when the broker under test does not advertise an API the cell
needs (listed in NEEDS), whatever its scenarios did - such a cell is never
counted as a pass. With a reference file each cell shows both brokers, and
a scenario whose observations against runnel differ from those against
Kafka (compare.py) fails its cells as DIFF; both sides are printed under
the matrix. What differs on purpose is listed in differences.py.
"""

import json
import sys

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
import compare  # noqa: E402

COLUMNS = ["metadata", "admin", "produce/consume", "offsets by time", "groups", "idempotence", "transactions",
           "KIP-848 groups"]

CLIENTS = ["kcat", "librdkafka", "librdkafka 2.16", "kafka-python", "kafka-python 3", "aiokafka", "kafkajs",
           "platformatic", "Kafka tools", "Java client", "franz-go", "sarama", "kafka-go", "raw wire"]

# scenario -> the cells it proves
COVERS = {
    "kcat_metadata": [("kcat", "metadata")],
    "kafka_python_admin": [("kafka-python", "metadata"), ("kafka-python", "admin")],
    "kafkajs_admin": [("kafkajs", "metadata"), ("kafkajs", "admin")],
    "restart": [("kafka-python", "admin")],
    "hostile_input": [("raw wire", "metadata")],
    "port_in_use": [("raw wire", "metadata")],
    "hostile_table": [("raw wire", "metadata")],
    "connection_flood": [("raw wire", "metadata")],
    "frame_judge": [("raw wire", "metadata")],
    "slow_clients": [("raw wire", "metadata")],
    "kcat_codecs": [("kcat", "produce/consume")],
    "kafka_python_produce": [("kafka-python", "produce/consume")],
    "kafkajs_produce": [("kafkajs", "produce/consume")],
    "cross_codec": [("kcat", "produce/consume"), ("kafka-python", "produce/consume")],
    "log_restart": [("kafka-python", "produce/consume")],
    "crash_recovery": [("librdkafka", "produce/consume")],
    "list_offsets_time": [("kcat", "offsets by time"), ("kafka-python", "offsets by time"),
                          ("raw wire", "offsets by time")],
    "long_poll": [("raw wire", "produce/consume")],
    "dump_log": [("Kafka tools", "produce/consume")],
    "groups_range": [("librdkafka", "groups")],
    "groups_roundrobin": [("librdkafka", "groups")],
    "groups_cooperative_sticky": [("librdkafka", "groups")],
    "groups_kafka_python": [("kafka-python", "groups")],
    "groups_kafkajs": [("kafkajs", "groups")],
    "groups_kcat": [("kcat", "groups")],
    "groups_offsets_restart": [("librdkafka", "groups")],
    "groups_describe": [("kafka-python", "groups")],
    "idempotent_wire": [("raw wire", "idempotence")],
    "idempotent_crash": [("librdkafka", "idempotence")],
    "txn_commit_abort": [("librdkafka", "transactions")],
    "txn_zombie": [("librdkafka", "transactions")],
    "txn_timeout": [("librdkafka", "transactions")],
    "txn_admin": [("Kafka tools", "transactions")],
    "txn_wire": [("raw wire", "transactions")],
    "metadata_at_start": [("raw wire", "metadata")],
    "disk_full": [("librdkafka", "produce/consume")],
    "kafka_topics": [("Kafka tools", "admin")],
    "kafka_configs": [("Kafka tools", "admin")],
    "console_idempotent": [("Kafka tools", "produce/consume"), ("Kafka tools", "idempotence")],
    "console_plain": [("Kafka tools", "produce/consume")],
    "kafka_consumer_groups": [("Kafka tools", "groups")],
    "kafka_get_offsets": [("Kafka tools", "offsets by time")],
    "go_metadata": [("franz-go", "metadata"), ("sarama", "metadata"), ("kafka-go", "metadata")],
    "go_admin": [("franz-go", "admin"), ("sarama", "admin"), ("kafka-go", "admin")],
    "go_produce": [("franz-go", "produce/consume"), ("sarama", "produce/consume"), ("kafka-go", "produce/consume")],
    "go_groups": [("franz-go", "groups"), ("sarama", "groups"), ("kafka-go", "groups")],
    "go_franz_idempotent": [("franz-go", "idempotence")],
    "go_txn": [("franz-go", "transactions"), ("sarama", "transactions")],
    "go_sarama_idempotent": [("sarama", "idempotence")],
    "go_sarama_txn": [("sarama", "transactions"), ("franz-go", "transactions")],
    "java_txn": [("Java client", "produce/consume"), ("Java client", "transactions"), ("librdkafka", "transactions")],
    "java_zombie": [("Java client", "transactions")],
    "java_idempotent": [("Java client", "idempotence")],
    "eos_transform": [("librdkafka", "transactions"), ("librdkafka", "groups")],
    "eos_abort_offsets": [("librdkafka", "transactions"), ("raw wire", "transactions")],
    "kafkajs_idempotent": [("kafkajs", "idempotence")],
    "kafkajs_txn": [("kafkajs", "transactions"), ("librdkafka", "transactions")],
    "kafkajs_eos": [("kafkajs", "transactions"), ("kafkajs", "groups")],
    "py_metadata": [("kafka-python 3", "metadata"), ("aiokafka", "metadata")],
    "py_admin": [("kafka-python 3", "admin"), ("aiokafka", "admin")],
    "py_produce": [("kafka-python 3", "produce/consume"), ("aiokafka", "produce/consume")],
    "py_groups": [("kafka-python 3", "groups"), ("aiokafka", "groups")],
    "py_idempotent": [("kafka-python 3", "idempotence"), ("aiokafka", "idempotence")],
    "py_txn": [("kafka-python 3", "transactions"), ("aiokafka", "transactions")],
    "platformatic_metadata": [("platformatic", "metadata")],
    "platformatic_admin": [("platformatic", "admin")],
    "platformatic_produce": [("platformatic", "produce/consume")],
    "platformatic_groups": [("platformatic", "groups")],
    "platformatic_idempotent": [("platformatic", "idempotence")],
    "platformatic_txn": [("platformatic", "transactions")],
    "ck_metadata": [("librdkafka 2.16", "metadata")],
    "ck_admin": [("librdkafka 2.16", "admin")],
    "ck_produce": [("librdkafka 2.16", "produce/consume")],
    "ck_offsets_time": [("librdkafka 2.16", "offsets by time")],
    "ck_groups": [("librdkafka 2.16", "groups"), ("librdkafka 2.16", "admin")],
    "ck_idempotent": [("librdkafka 2.16", "idempotence")],
    "ck_txn": [("librdkafka 2.16", "transactions")],
    "ck_kip848": [("librdkafka 2.16", "KIP-848 groups")],
}

# column -> API keys the broker must advertise for it to be tested
NEEDS = {
    "idempotence": [22],                        # InitProducerId
    "transactions": [22, 24, 26],               # + AddPartitionsToTxn, EndTxn
    "KIP-848 groups": [68],                     # ConsumerGroupHeartbeat
}

# Cells with no scenario yet that a reader should see as gaps, not blanks.
PLANNED = {
    ("Java client", "KIP-848 groups"): "no scenario yet",
    ("librdkafka", "KIP-848 groups"): "no scenario yet",
}


def load(path):
    with open(path) as f:
        return json.load(f)


def cell(results, advertised, client, column, differing=()):
    """(text, state) of one cell for one broker; state is pass, fail, na, none.
    differing: the scenarios whose observations differ from Kafka's."""
    needs = NEEDS.get(column, [])
    missing = [k for k in needs if k not in advertised]
    names = [n for n, cells in COVERS.items() if (client, column) in cells and n in results]
    if missing:
        return "not advertised (API %s)" % ",".join(str(k) for k in missing), "na"
    if not names:
        if (client, column) in PLANNED:
            return PLANNED[(client, column)], "none"
        return "", "none"
    failed = [n for n in names if results[n]["status"] == "fail"]
    skipped = [n for n in names if results[n]["status"] == "skip"]
    if failed:
        return "FAIL (%s)" % ", ".join(failed), "fail"
    diff = [n for n in names if n in differing]
    if diff:
        return "DIFF (%s)" % ", ".join(diff), "fail"
    if len(skipped) == len(names):
        return "skipped (%s)" % results[skipped[0]]["reason"][:60], "none"
    return "pass", "pass"


def render(runnel, kafka=None):
    lines = ["# Compatibility matrix", ""]
    lines.append("Rows are clients, columns what they do; each cell is proven by the scenarios of "
                 "compat-tests/matrix.py COVERS. %s" % (
                     "Cells show runnel / Apache Kafka 4.4." if kafka else "Broker: runnel."))
    lines.append("")
    lines.append("| client | " + " | ".join(COLUMNS) + " |")
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    passed = failed = 0
    diffs = compare.differences_of(runnel, kafka) if kafka else {}
    differing = set(compare.failing(diffs))
    for client in CLIENTS:
        row = []
        for column in COLUMNS:
            text, state = cell(runnel["scenarios"], runnel["advertised"], client, column, differing)
            if state == "pass":
                passed += 1
            elif state == "fail":
                failed += 1
            if kafka:
                ktext, kstate = cell(kafka["scenarios"], kafka["advertised"], client, column)
                if kstate == "fail":
                    failed += 1
                if text or ktext:
                    text = "%s / %s" % (text or "-", ktext or "-")
            row.append(text)
        lines.append("| %s | %s |" % (client, " | ".join(row)))
    lines.append("")
    uncovered = [n for n in runnel["scenarios"] if n not in COVERS]
    if uncovered:
        lines.append("Scenarios not in the matrix: %s" % ", ".join(sorted(uncovered)))
        lines.append("")
    if kafka:
        scenarios, keys = compare.counted(runnel, kafka)
        lines.append("Observations compared with Apache Kafka's: %d scenarios, %d observations; %s"
                     % (scenarios, keys, "%d scenarios differ (DIFF):" % len(differing) if differing
                        else "no difference that is not on purpose"))
        lines += compare.describe(diffs)
        lines.append("")
        # A scenario outside the matrix fails the run by differing too.
        failed += len([n for n in differing if n not in COVERS])
    if "malformed" in runnel:
        # What tshark's dissector cannot read in Kafka's own answers too is
        # the dissector's gap, not a fault of runnel.
        theirs = {tuple(k) for k in (kafka or {}).get("malformed", [])}
        ours = [tuple(k) for k in runnel["malformed"] if tuple(k) not in theirs]
        lines.append("Conformance (tshark's Kafka dissector and kafka-clients' parser on runnel's answers): %s" % (
            "clean" if not ours else "%d kinds of malformed answers" % len(ours)))
        for key, version, message in ours:
            lines.append("- api key %s version %s: %s" % (key, version, message))
            failed += 1
        if theirs:
            lines.append("(not judged, also malformed for the dissector in Kafka's answers: %s)" % ", ".join(
                "key %s v%s" % (k[0], k[1]) for k in sorted(theirs)))
        lines.append("")
    lines.append("%d passed, %d failed" % (passed, failed))
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 2:
        print("usage: matrix.py RUNNEL.json [KAFKA.json]", file=sys.stderr)
        return 2
    runnel = load(argv[1])
    kafka = load(argv[2]) if len(argv) > 2 else None
    text = render(runnel, kafka)
    sys.stdout.write(text)
    return 0 if " 0 failed" in text.splitlines()[-1] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
