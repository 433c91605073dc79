"""compat-tests/py_clients.py - the current PyPI clients and @platformatic/kafka.

kafka-python 3.0.x and aiokafka 0.14 (PyPI, in build/compat-venv, beside
Debian's kafka-python 2.0.2) speak through one program, py_driver.py, run by
the venv's interpreter; @platformatic/kafka 1.x (npm, a devDependency of
compat-tests/package.json) through platformatic_driver.mjs. Both print what
their client saw as JSON lines in the Go program's shapes (go/main.go), and
these stories decide, for kafka-python 3 and aiokafka (py_*), for
platformatic (platformatic_*), and for librdkafka 2.16 (ck_driver.py; its
scenarios, ck_*, are in ck_clients.py):

    *_metadata    the client's version probe and Metadata: one broker, broker 1 leads every
                  partition; every client saw the ApiVersions the broker advertises
    *_admin       create a topic with configs, refuse it again, describe its configs, alter
                  them (incremental where the client has it, and whole-set), add partitions,
                  refuse fewer, delete
    *_produce     keys, null and empty keys and values, headers, CreateTime timestamps under
                  every codec the client has, read back partition by partition: same records,
                  same order, offsets contiguous and as acknowledged, each batch on disk
                  compressed as asked
    *_groups      two members of a group share a topic's partitions, read every record once
                  between them and commit; after a broker restart a new member reads exactly
                  what was written since, from the committed offsets on
    *_idempotent  an idempotent producer: batches carry a producer id and gapless sequences,
                  every record read back once at its acknowledged offset
    *_txn         a transactional producer commits some transactions and aborts others over
                  two partitions; the client's read_committed reader sees exactly the
                  committed records, its read_uncommitted reader every one; librdkafka's
                  read_committed reader agrees

Client traits the stories allow for, the same against Apache Kafka:
kafka-python 3 and aiokafka refuse a record with neither key nor value (the
driver sends an empty key there); aiokafka's admin has no
IncrementalAlterConfigs; platformatic's headers are a Map (no key twice in a
record), it reads only as a group member, and it has zstd only on a Node.js
with zlib.zstdCompressSync (22.15+). Its read_committed filter (1.35) keeps
one aborted range per producer id, so a fetch answer holding two aborted
transactions of one producer lets all but the last through (against Kafka
4.4 as against runnel): its driver uses one transactional id per
transaction. kafka-python 3.0.12's KafkaAdminClient.api_versions() raises on
an API key it does not know (Kafka 4.4 advertises 93), so its driver reads
the probe's result underneath.

These clients are installed by tools/deps.sh; a scenario whose client is
missing is skipped and says how to install it (never a pass).
"""

import json
import os
import shutil
import subprocess

from go_clients import (b64, check_gone, check_group_of_two, check_group_run, check_topic, observe_metadata,
                        observe_steps, one, produced_and_consumed)
from harness import BROKER_ID, HERE, REPO, Failure, check
from logs import create_topics, disk_batches
from transactions import read_all

VENV_PYTHON = os.path.join(REPO, "build", "compat-venv", "bin", "python")
PY_DRIVER = os.path.join(HERE, "py_driver.py")
CK_DRIVER = os.path.join(HERE, "ck_driver.py")  # librdkafka 2.16 (ck_clients.py)
JS_DRIVER = os.path.join(HERE, "platformatic_driver.mjs")
PLATFORMATIC = os.path.join(HERE, "node_modules", "@platformatic", "kafka", "package.json")
RUN_TIMEOUT_S = 60  # the drivers give up on their own after 50 s
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PY_CLIENTS = ("kp3", "aiokafka")
NAMES = {"kp3": "kafka-python 3", "aiokafka": "aiokafka", "platformatic": "platformatic", "ck": "librdkafka 2.16"}
# What a venv client's version is, asked of the venv's interpreter.
VERSION_OF = {"kp3": "kafka.__version__", "aiokafka": "aiokafka.__version__",
              "ck": "confluent_kafka.libversion()[0]"}
INSTALL = "bash tools/deps.sh test installs"

_installed = {}  # client -> version, or None when missing (asked once per run)


def installed(client):
    """The client's version, or None when it is not installed."""
    if client not in _installed:
        _installed[client] = _probe(client)
    return _installed[client]


def _probe(client):
    if client == "platformatic":
        if not shutil.which("node") or not os.path.isfile(PLATFORMATIC):
            return None
        with open(PLATFORMATIC) as f:
            return json.load(f).get("version")
    if not os.access(VENV_PYTHON, os.X_OK):
        return None
    expression = VERSION_OF[client]
    try:
        p = subprocess.run([VENV_PYTHON, "-c", "import %s; print(%s)" % (expression.split(".")[0], expression)],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def present(ctx, clients):
    """The clients of the list that are installed; says which are not."""
    have = [c for c in clients if installed(c) is not None]
    missing = [c for c in clients if c not in have]
    if missing:
        where = ("compat-tests/node_modules/@platformatic/kafka" if missing == ["platformatic"]
                 else "build/compat-venv")
        ctx.skip_check("%s: not installed in %s; %s %s" % (" and ".join(NAMES[c] for c in missing), where,
                                                          INSTALL, "them" if len(missing) > 1 else "it"))
    return have


def drive(ctx, client, step, broker, *args):
    """Runs one step of a driver; returns its events, {event name: [events]}."""
    if client == "platformatic":
        argv = ["node", JS_DRIVER, step, broker.bootstrap]
    elif client == "ck":
        argv = [VENV_PYTHON, CK_DRIVER, step, broker.bootstrap]
    else:
        argv = [VENV_PYTHON, PY_DRIVER, client, step, broker.bootstrap]
    code, out, _ = ctx.run(argv + [str(a) for a in args], timeout_s=RUN_TIMEOUT_S, check_exit=False)
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            raise Failure("%s %s printed a line that is not JSON: %r" % (NAMES[client], step, line[:200]))
    failed = [e for e in events if e["event"] == "error"]
    if failed:
        raise Failure("%s %s: %s" % (NAMES[client], step, failed[0].get("error")))
    check(code == 0 and events and events[-1]["event"] == "done",
          "%s %s exited with %d without saying done" % (NAMES[client], step, code))
    by_name = {}
    for e in events:
        by_name.setdefault(e["event"], []).append(e)
    return events, by_name


# ---------------------------------------------------------------------------
# The stories, each told by every client of a family.


def metadata_story(ctx, clients):
    """Returns {client: its events by name}, for checks of one client's own."""
    broker = ctx.broker()
    advertised = {k: list(v) for k, v in broker.api_keys.items()}
    seen = {}
    for client in clients:
        topic = "md-" + client
        _, ev = drive(ctx, client, "metadata", broker, topic)
        what = "%s metadata" % NAMES[client]
        v = one(ev, "versions", what)
        versions = {int(k): list(r) for k, r in v["versions"].items()}
        check(versions == advertised, "%s: the client saw ApiVersions %r, the broker advertises %r"
              % (what, versions, advertised))
        if v.get("guess"):
            ctx.say("%s takes the broker for Kafka %s" % (NAMES[client], v["guess"]))
        md = one(ev, "metadata", what)
        observe_metadata(ctx, NAMES[client], broker, md, one(ev, "topic", what))
        want = [{"id": BROKER_ID, "host": "127.0.0.1", "port": broker.port}]
        check(md["brokers"] == want, "%s: brokers %r, want %r" % (what, md["brokers"], want))
        check(md["controller"] == BROKER_ID, "%s: controller %r" % (what, md["controller"]))
        check(topic in (md["topics"] or []), "%s: topics %r lack %s" % (what, md["topics"], topic))
        check_topic(what, one(ev, "topic", what), 3)
        seen[client] = ev
    return seen


def admin_story(ctx, clients):
    broker = ctx.broker()
    for client in clients:
        topic = "admin-" + client
        _, ev = drive(ctx, client, "admin", broker, topic)
        what = "%s admin" % NAMES[client]
        observe_steps(ctx, "%s admin steps" % NAMES[client], ev)

        def ok(step):
            e = one(ev, step, what)
            check(e.get("error") is None, "%s: %s failed: %s" % (what, step, e.get("error")))
            return e

        def refused(step, code):
            e = one(ev, step, what)
            check(e["kafka_error"] == code, "%s: %s answered %r (%s), want error %d"
                  % (what, step, e["kafka_error"], e["error"], code))

        def config(step, key):
            e = ok(step)
            check(key in e["configs"], "%s: %s lacks %s" % (what, step, key))
            c = e["configs"][key]
            return c["value"], c["source"]

        def expect(step, key, want):
            got = config(step, key)
            check(got == want, "%s: %s %s = %r (value, source), want %r" % (what, step, key, got, want))

        ok("create")
        refused("create-again", 36)  # TOPIC_ALREADY_EXISTS
        # Sources: 1 DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG.
        expect("describe", "retention.ms", ("3600000", 1))
        expect("describe", "cleanup.policy", ("compact", 1))
        incremental = one(ev, "alter-incremental", what)
        if incremental.get("unsupported"):
            ctx.say("%s: %s" % (what, incremental["unsupported"]))
        else:
            ok("alter-incremental")
            expect("describe-after-alter", "retention.ms", ("7200000", 1))
            expect("describe-after-alter", "cleanup.policy", ("delete", 5))
        # AlterConfigs replaces the whole set: what it does not name is back to
        # its default, unless the client sent it along (kafka-python 3 does).
        if ok("alter-state").get("keeps_modified"):
            expect("describe-after-state", "retention.ms", ("7200000", 1))
        else:
            expect("describe-after-state", "retention.ms", ("604800000", 5))
        expect("describe-after-state", "segment.bytes", ("1048576", 1))
        expect("describe-after-state", "cleanup.policy", ("delete", 5))
        ok("create-partitions")
        refused("create-partitions-fewer", 37)  # INVALID_PARTITIONS
        check_topic(what, one(ev, "after-partitions", what), 5)
        ok("delete")
        check_gone(ctx, broker, topic, one(ev, "gone", what), what)


def produce_story(ctx, clients):
    broker = ctx.broker()
    partitions, per_codec = 3, 120
    create_topics(broker, [("produce-" + c, partitions, {}) for c in clients])
    problems = []
    for client in clients:
        topic = "produce-" + client
        events, ev = drive(ctx, client, "produce", broker, topic, partitions, per_codec, ",".join(CODECS))
        codecs = [c for c in CODECS if c not in {e["codec"] for e in ev.get("codec-unavailable", [])}]
        for e in ev.get("codec-unavailable", []):
            ctx.say("%s leaves %s out: %s" % (NAMES[client], e["codec"], e["why"]))
        n = produced_and_consumed(ctx, client, events, topic, partitions, broker, problems)
        check(n == per_codec * len(codecs), "%s: %d records sent, want %d" % (NAMES[client], n, per_codec * len(codecs)))
    check(not problems, "records read back right, but batches were not compressed as asked:\n      "
          + "\n      ".join(problems))


def groups_story(ctx, clients):
    """Returns the broker, restarted, with the groups' commits."""
    broker = ctx.broker(overrides=["group.initial.rebalance.delay.ms=0"])
    partitions, first, second = 4, 200, 120
    create_topics(broker, [("group-" + c, partitions, {}) for c in clients])
    ends = {}
    for client in clients:
        topic = group = "group-" + client
        _, ev = drive(ctx, client, "group-share", broker, topic, group, partitions, first)
        ends[client] = check_group_of_two("%s group of two" % NAMES[client], ev, partitions, first, ctx)

    # The commits are in __consumer_offsets: they outlive the broker.
    broker.stop()
    broker.start()
    for client in clients:
        topic = group = "group-" + client
        _, ev = drive(ctx, client, "group-resume", broker, topic, group, partitions, second)
        resumed, _ = check_group_run("%s member after a broker restart" % NAMES[client], ev, partitions, second,
                                     ends[client])
        ctx.observe("%s member after a broker restart: read (partition, offset), committed" % NAMES[client],
                    [sorted([e["p"], e["o"]] for e in ev.get("got", [])), resumed])
        for e in ev.get("got", []):
            check(b64(e["value"]).startswith(b"resume-"), "%s: the new member read %r, written before the restart"
                  % (NAMES[client], b64(e["value"])))
    return broker


def idempotent_story(ctx, clients):
    broker = ctx.broker()
    if 22 not in broker.api_keys:
        ctx.skip_check("the broker does not offer InitProducerId (key 22)")
        return
    partitions, per_partition = 3, 100
    create_topics(broker, [("idempotent-" + c, partitions, {}) for c in clients])
    for client in clients:
        topic = "idempotent-" + client
        events, _ = drive(ctx, client, "idempotent", broker, topic, partitions, per_partition)
        produced_and_consumed(ctx, client, events, topic, partitions, broker, None)
        for p in range(partitions):
            pids, next_sequence = set(), 0
            for b in disk_batches(broker, topic, p):
                check(b["producer_id"] >= 0 and b["producer_epoch"] >= 0,
                      "%s-%d: batch at offset %d has producer id %d epoch %d, want an idempotent producer's"
                      % (topic, p, b["base_offset"], b["producer_id"], b["producer_epoch"]))
                check(b["base_sequence"] == next_sequence, "%s-%d: batch at offset %d has base sequence %d, want %d"
                      % (topic, p, b["base_offset"], b["base_sequence"], next_sequence))
                pids.add(b["producer_id"])
                next_sequence += b["count"]
            check(len(pids) == 1, "%s-%d: producer ids %r, want one" % (topic, p, sorted(pids)))


def txn_story(ctx, clients):
    """Returns the broker, or None when it has no transactions."""
    broker = ctx.broker()
    if any(k not in broker.api_keys for k in (22, 24, 26)):
        ctx.skip_check("the broker does not offer transactions (keys 22, 24, 26)")
        return
    partitions, plan, per_txn = 2, "ccacaac", 10
    create_topics(broker, [("txn-" + c, partitions, {}) for c in clients])
    for client in clients:
        topic = "txn-" + client
        events, _ = drive(ctx, client, "txn-produce", broker, topic, partitions, "txn-" + client, plan, per_txn)
        sent = sorted((e for e in events if e["event"] == "sent"), key=lambda e: (e["p"], e["o"]))
        check(len(sent) == len(plan) * per_txn, "%s sent %d records, want %d"
              % (NAMES[client], len(sent), len(plan) * per_txn))
        want = {p: [text(e) for e in sent if e["p"] == p and e["commit"]] for p in range(partitions)}
        every = {p: [text(e) for e in sent if e["p"] == p] for p in range(partitions)}
        # The plan ends with a commit: an aborted record a reader let through
        # would take the place of a committed one among the first len(want) read.
        check(plan.endswith("c") and want != every, "the plan %r cannot tell readers apart" % plan)
        for isolation, expected in (("read_committed", want), ("read_uncommitted", every)):
            counts = ",".join(str(len(expected[p])) for p in range(partitions))
            read, _ = drive(ctx, client, "txn-consume", broker, topic, isolation, counts)
            got = {p: [] for p in range(partitions)}
            for e in read:
                if e["event"] == "got":
                    got[e["p"]].append(text(e))
            ctx.observe("%s %s reads" % (NAMES[client], isolation), got)
            check(got == expected, "%s %s read %r, want %r" % (NAMES[client], isolation, got, expected))
        ctx.observe("%s acknowledged (partition, offset, committed)" % NAMES[client],
                    [[e["p"], e["o"], e["commit"]] for e in sent])
        rd = read_all(broker, topic, list(range(partitions)), "read_committed", expect=sum(map(len, want.values())))
        ctx.observe("librdkafka read_committed reads %s's transactions" % NAMES[client], rd)
        check(rd == want, "librdkafka read_committed read %r of %s's transactions, want %r"
              % (rd, NAMES[client], want))
    broker.check_alive()
    return broker


def text(event):
    """An event's value (base64 in the drivers' lines) as text."""
    return b64(event["value"]).decode()


def story(fn, clients):
    def scenario(ctx):
        have = present(ctx, clients)
        if have:
            fn(ctx, have)
    return scenario


def scenario_py_metadata(ctx):
    """kafka-python 3 and aiokafka probe versions and read Metadata: one broker, leader of all."""
    story(metadata_story, PY_CLIENTS)(ctx)


def scenario_py_admin(ctx):
    """kafka-python 3 and aiokafka admin: create with configs, describe, alter, add partitions, delete."""
    story(admin_story, PY_CLIENTS)(ctx)


def scenario_py_produce(ctx):
    """kafka-python 3 and aiokafka write keys, nulls, headers, timestamps under every codec; read back."""
    story(produce_story, PY_CLIENTS)(ctx)


def scenario_py_groups(ctx):
    """kafka-python 3 and aiokafka: two members share a topic and commit; after a restart one resumes."""
    story(groups_story, PY_CLIENTS)(ctx)


def scenario_py_idempotent(ctx):
    """kafka-python 3 and aiokafka idempotent producers: one producer id, gapless sequences."""
    story(idempotent_story, PY_CLIENTS)(ctx)


def scenario_py_txn(ctx):
    """kafka-python 3 and aiokafka commit and abort transactions; read_committed sees the committed."""
    story(txn_story, PY_CLIENTS)(ctx)


def scenario_platformatic_metadata(ctx):
    """@platformatic/kafka probes versions and reads Metadata: one broker, leader of all."""
    story(metadata_story, ("platformatic",))(ctx)


def scenario_platformatic_admin(ctx):
    """@platformatic/kafka admin: create with configs, describe, alter both ways, add partitions, delete."""
    story(admin_story, ("platformatic",))(ctx)


def scenario_platformatic_produce(ctx):
    """@platformatic/kafka writes keys, nulls, headers, timestamps under its codecs; read back."""
    story(produce_story, ("platformatic",))(ctx)


def scenario_platformatic_groups(ctx):
    """@platformatic/kafka: two members share a topic and commit; after a restart one resumes."""
    story(groups_story, ("platformatic",))(ctx)


def scenario_platformatic_idempotent(ctx):
    """@platformatic/kafka's idempotent producer: one producer id, gapless sequences."""
    story(idempotent_story, ("platformatic",))(ctx)


def scenario_platformatic_txn(ctx):
    """@platformatic/kafka commits and aborts transactions; read_committed sees the committed."""
    story(txn_story, ("platformatic",))(ctx)


SCENARIOS = [
    ("py_metadata", scenario_py_metadata),
    ("py_admin", scenario_py_admin),
    ("py_produce", scenario_py_produce),
    ("py_groups", scenario_py_groups),
    ("py_idempotent", scenario_py_idempotent),
    ("py_txn", scenario_py_txn),
    ("platformatic_metadata", scenario_platformatic_metadata),
    ("platformatic_admin", scenario_platformatic_admin),
    ("platformatic_produce", scenario_platformatic_produce),
    ("platformatic_groups", scenario_platformatic_groups),
    ("platformatic_idempotent", scenario_platformatic_idempotent),
    ("platformatic_txn", scenario_platformatic_txn),
]
