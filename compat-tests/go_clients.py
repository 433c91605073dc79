"""compat-tests/go_clients.py - the Go clients: franz-go, sarama and segmentio/kafka-go.

One Go program (compat-tests/go/, built into build/compat-go/) speaks for all
three; it prints what each client saw as JSON lines and these stories decide:

    go_metadata         each client's version probe (ApiVersions) and Metadata: one broker,
                        broker 1 leads every partition of a topic; all three saw the same versions
    go_admin            create a topic with configs, describe them, alter them (incremental and
                        whole-set), add partitions, refuse fewer, delete: kadm, sarama's
                        ClusterAdmin, kafka-go's Client
    go_produce          keys, null and empty keys and values, headers, CreateTime timestamps,
                        every codec the client has; read back by the same client, partition by
                        partition: same records, same order, offsets contiguous, exact counts,
                        and each batch on disk compressed as asked
    go_groups           two members of a group share a topic's partitions (a Stable group whose
                        assignment covers each partition once), read every record once between
                        them, commit and leave; a member started afterwards reads exactly what
                        was written since, from the committed offsets on
    go_franz_idempotent franz-go's default, idempotent producer: batches carry a producer id and
                        sequences (fails while the broker lacks InitProducerId: kgo then writes
                        without a producer id, silently)
    go_txn              franz-go's transactional producer commits some transactions and aborts
                        others over two partitions; franz-go and sarama at read_committed read
                        exactly the committed records, franz-go at read_uncommitted every one;
                        librdkafka's read_committed reader agrees
    go_sarama_idempotent sarama's idempotent producer (acks all, one request in flight): every
                        batch on disk carries a producer id, sequences follow on without gaps,
                        and sarama reads every record back once
    go_sarama_txn       sarama's transactional producer commits some transactions and aborts
                        others, each also sending a group's offset (AddMessageToTxn); the group's
                        committed offset moves with committed transactions only; franz-go at
                        read_committed reads exactly the committed records, at read_uncommitted
                        every one

Client traits the checks allow for, the same against Apache Kafka: kafka-go's
Reader returns an empty key or value as nil; kafka-go's Writer does not say at
which offsets records landed. Producers run without idempotence (kgo's
DisableIdempotentWrite) and with one request in flight, so order per partition
is the order of sending.

go_franz_idempotent is skipped (and says so) against a broker whose
ApiVersions lacks InitProducerId, unless RUNNEL_GO_IDEMPOTENT=1.

Environment: GO (the go command; default build/go-toolchain/bin/go when
tools/deps.sh put one there, else go on PATH), RUNNEL_GO_IDEMPOTENT.
"""

import base64
import json
import os
import shutil
import subprocess
import time

from harness import BROKER_ID, HERE, REPO, Failure, admin_client, check, eventually, records_summary
from logs import check_disk, check_offsets_contiguous, create_topics, disk_batches, first_difference
from transactions import read_all

GO_DIR = os.path.join(HERE, "go")
GO_BINARY = os.path.join(REPO, "build", "compat-go", "compat-go")
GO_BUILD_TIMEOUT_S = 300
GO_RUN_TIMEOUT_S = 60  # the program gives up on its own after 50 s
CLIENTS = ("franz", "sarama", "kafkago")
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
FORCE_IDEMPOTENT = os.environ.get("RUNNEL_GO_IDEMPOTENT") == "1"
GONE_MORE_S = 20  # for a deleted topic to leave the listing, after the driver's 5 s

_built = []  # the program is built once per run of the suite


def go_command():
    cmd = os.environ.get("GO")
    if cmd:
        return cmd
    local = os.path.join(REPO, "build", "go-toolchain", "bin", "go")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("go")
    if not found:
        raise Failure("no go command (bash tools/deps.sh test installs Go)")
    return found


def go_program(ctx):
    """Builds build/compat-go/compat-go (go build's cache makes a rebuild cheap)."""
    if _built:
        return _built[0]
    started = time.monotonic()
    argv = [go_command(), "build", "-o", GO_BINARY, "."]
    # The toolchain is the one tools/deps.sh checked; no VCS stamp (a fresh
    # clone owned by someone else would make go build fail on it).
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false")
    try:
        p = subprocess.run(argv, cwd=GO_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=GO_BUILD_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise Failure("go build did not finish within %d s" % GO_BUILD_TIMEOUT_S)
    if p.returncode != 0:
        ctx.note("$ " + " ".join(argv), p.stdout + p.stderr)
        raise Failure("go build of compat-tests/go failed (exit %d)" % p.returncode)
    elapsed_s = time.monotonic() - started
    if elapsed_s > 5:
        ctx.say("built the Go clients in %.1f s" % elapsed_s)
    _built.append(GO_BINARY)
    return GO_BINARY


def go_run(ctx, client, step, broker, *args):
    """Runs one step; returns its events, {event name: [events]} and in order."""
    program = go_program(ctx)
    code, out, err = ctx.run([program, client, step, broker.bootstrap] + [str(a) for a in args],
                             timeout_s=GO_RUN_TIMEOUT_S, check_exit=False)
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            raise Failure("%s %s printed a line that is not JSON: %r" % (client, step, line[:200]))
    failed = [e for e in events if e["event"] == "error"]
    if failed:
        raise Failure("%s %s: %s: %s" % (client, step, failed[0].get("what"), failed[0].get("error")))
    check(code == 0 and events and events[-1]["event"] == "done",
          "%s %s exited with %d without saying done" % (client, step, code))
    by_name = {}
    for e in events:
        by_name.setdefault(e["event"], []).append(e)
    return events, by_name


def one(by_name, event, what):
    found = by_name.get(event, [])
    check(len(found) == 1, "%s: %d %r events, want 1" % (what, len(found), event))
    return found[0]


def b64(data):
    return None if data is None else base64.b64decode(data)


# ---------------------------------------------------------------------------


def check_topic(what, t, partitions):
    check(t.get("listed") and t.get("error") is None, "%s: topic %s not listed (%r)" % (what, t["topic"], t))
    got = t["partitions"] or []
    check([p["partition"] for p in got] == list(range(partitions)),
          "%s: partitions %r, want 0..%d" % (what, [p["partition"] for p in got], partitions - 1))
    for p in got:
        check(p["leader"] == BROKER_ID and p["replicas"] == [BROKER_ID] and p["isr"] == [BROKER_ID]
              and p["error"] is None, "%s: partition %r, want broker %d leader, replica and in sync"
              % (what, p, BROKER_ID))


def scenario_go_metadata(ctx):
    """franz-go, sarama and kafka-go probe versions and read Metadata: one broker, leader of all."""
    broker = ctx.broker()
    create_topics(broker, [("go-md", 3, {})])
    seen = {}
    for client in CLIENTS:
        _, ev = go_run(ctx, client, "metadata", broker, "go-md")
        what = "%s metadata" % client
        v = one(ev, "versions", what)
        versions = {int(k): tuple(r[:2]) for k, r in v["versions"].items()}
        for key in (0, 1, 3, 18):  # Produce, Fetch, Metadata, ApiVersions
            check(key in versions, "%s: ApiVersions lacks key %d" % (what, key))
        seen[client] = versions
        if client == "franz":
            # kgo uses, per key, the broker's max capped by its own.
            for key, (lo, hi, use) in ((int(k), r) for k, r in v["versions"].items()):
                check(lo <= use <= hi, "%s: key %d, kgo would use v%d outside %d-%d" % (what, key, use, lo, hi))
            ctx.say("franz-go guesses the broker is Kafka %s" % v["guess"])
        if client == "sarama":
            check(v["error_code"] == 0, "%s: ApiVersions v3 error %d" % (what, v["error_code"]))
            ctx.say("sarama Config.Version %s" % v["config_version"])
        md = one(ev, "metadata", what)
        observe_metadata(ctx, client, broker, md, one(ev, "topic", what))
        want = [{"id": BROKER_ID, "host": "127.0.0.1", "port": broker.port}]
        check(md["brokers"] == want, "%s: brokers %r, want %r" % (what, md["brokers"], want))
        check(md["controller"] == BROKER_ID, "%s: controller %r" % (what, md["controller"]))
        check("go-md" in (md["topics"] or []), "%s: topics %r lack go-md" % (what, md["topics"]))
        check_topic(what, one(ev, "topic", what), 3)
    check(seen["franz"] == seen["sarama"] == seen["kafkago"],
          "the clients saw different ApiVersions: %r" % seen)


def scenario_go_admin(ctx):
    """kadm, sarama ClusterAdmin, kafka-go Client: topic configs, partitions, deletion."""
    broker = ctx.broker()
    for client in CLIENTS:
        topic = "go-admin-" + client
        _, ev = go_run(ctx, client, "admin", broker, topic)
        what = "%s admin" % client

        def ok(step):
            e = one(ev, step, what)
            check(e["error"] is None, "%s: %s failed: %s" % (what, step, e["error"]))
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

        observe_steps(ctx, "%s admin steps" % client, ev)
        ok("create")
        refused("create-again", 36)  # TOPIC_ALREADY_EXISTS
        # Sources: 1 DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG.
        check(config("describe", "retention.ms") == ("3600000", 1), "%s: retention.ms after create: %r"
              % (what, config("describe", "retention.ms")))
        check(config("describe", "cleanup.policy") == ("compact", 1), "%s: cleanup.policy after create: %r"
              % (what, config("describe", "cleanup.policy")))
        ok("alter-incremental")
        check(config("describe-after-alter", "retention.ms") == ("7200000", 1),
              "%s: retention.ms after the incremental set: %r" % (what, config("describe-after-alter", "retention.ms")))
        check(config("describe-after-alter", "cleanup.policy") == ("delete", 5),
              "%s: cleanup.policy after the incremental delete: %r"
              % (what, config("describe-after-alter", "cleanup.policy")))
        ok("alter-state")
        check(config("describe-after-state", "segment.bytes") == ("1048576", 1),
              "%s: segment.bytes after AlterConfigs: %r" % (what, config("describe-after-state", "segment.bytes")))
        check(config("describe-after-state", "retention.ms") == ("604800000", 5),
              "%s: retention.ms after AlterConfigs replaced the set without it: %r"
              % (what, config("describe-after-state", "retention.ms")))
        ok("create-partitions")
        refused("create-partitions-fewer", 37)  # INVALID_PARTITIONS
        check_topic(what, one(ev, "after-partitions", what), 5)
        ok("delete")
        check_gone(ctx, broker, topic, one(ev, "gone", what), what)


def check_gone(ctx, broker, topic, gone, what):
    """The deleted topic left the listing: within the 5 s the driver waits, or, for
    a broker slow to apply the deletion to its metadata (Kafka under load), a
    while after."""
    if "error" not in gone:
        return
    admin = admin_client(broker)
    try:
        eventually(lambda: topic not in admin.list_topics(), "%s: %s, and still" % (what, gone["error"]),
                   timeout_s=GONE_MORE_S, interval_s=0.2)
    finally:
        admin.close()
    ctx.say("%s: the deleted topic left the listing more than 5 s after DeleteTopics" % what)


def observe_metadata(ctx, client, broker, md, topic):
    """What a client read in Metadata (its "metadata" and "topic" events). Which
    versions a broker advertises is its own affair (runnel has fewer APIs), so
    the version probe is not observed; what the client then read is."""
    ctx.observe("%s Metadata (brokers, controller, topics, the topic)" % client,
                {"brokers": [[b["id"], b["host"], b["port"] == broker.port] for b in md["brokers"]],
                 "controller": md["controller"],
                 "topics": sorted(t for t in md["topics"] or [] if not t.startswith("__")),
                 "topic": {k: v for k, v in topic.items() if k != "event"}})


def observe_steps(ctx, key, by_name):
    """Every step's outcome (an admin story's: Kafka error codes, configs with
    their sources), from a driver's {event name: [events]}. An error's text is
    the client's wording of the broker's message: whether one came is observed."""
    ctx.observe(key, {name: [{k: (v is not None if k == "error" else v) for k, v in e.items()
                              if k not in ("event", "polls", "after_polls")} for e in found]
                      for name, found in by_name.items() if name != "done"})


def produced_and_consumed(ctx, client, events, topic, partitions, broker, codec_problems):
    """The records read back are the records sent, partition by partition."""
    sent, got, ends = {}, {}, {}
    for e in events:
        if e["event"] == "sent":
            sent.setdefault(e["p"], []).append(e)
        elif e["event"] == "got":
            got.setdefault(e["p"], []).append(e)
        elif e["event"] == "end":
            ends[e["p"]] = e["offset"]
    what = "%s %s" % (client, topic)
    check(sorted(sent) == list(range(partitions)), "%s: sent to partitions %r" % (what, sorted(sent)))
    check(sorted(got) == list(range(partitions)), "%s: read from partitions %r" % (what, sorted(got)))
    # Timestamps are the sender's clock; the checks below compare them with what was sent.
    ctx.observe("%s: acknowledged offsets, by partition" % client, {p: [e["o"] for e in v] for p, v in sent.items()})
    ctx.observe("%s: read back, by partition (offset, key, value, headers)" % client,
                {p: records_summary([e["o"], e["key"], e["value"], e["h"]] for e in v) for p, v in got.items()})
    ctx.observe("%s: end offsets" % client, ends)

    def shape(e):
        key, value = b64(e["key"]), b64(e["value"])
        if client == "kafkago":
            # kafka-go's Reader gives nil for a zero-length key or value
            # (its Writer does send them as empty, not null).
            key, value = key or None, value or None
        return (key, value, [(h["k"], h["v"]) for h in e["h"]], e["ts"])

    for p in range(partitions):
        check_offsets_contiguous("%s partition %d" % (what, p), [e["o"] for e in got[p]])
        first_difference("%s partition %d read back" % (what, p), [shape(e) for e in got[p]],
                         [shape(e) for e in sent[p]])
        acked = [e["o"] for e in sent[p]]
        if client != "kafkago":
            check(acked == [e["o"] for e in got[p]], "%s partition %d: acknowledged offsets %r..., read %r..."
                  % (what, p, acked[:5], [e["o"] for e in got[p]][:5]))
        check(ends.get(p) == len(sent[p]), "%s partition %d: end offset %r, %d records sent"
              % (what, p, ends.get(p), len(sent[p])))
        check_disk(broker, topic, p, [e["codec"] for e in sent[p]], codec_problems)
    return sum(len(v) for v in sent.values())


def scenario_go_produce(ctx):
    """Each Go client writes keys, nulls, headers, timestamps under every codec and reads it back."""
    broker = ctx.broker()
    partitions, per_codec = 3, 150
    topics = [("go-produce-" + c, partitions, {}) for c in CLIENTS]
    create_topics(broker, topics)
    problems = []
    for client in CLIENTS:
        topic = "go-produce-" + client
        events, _ = go_run(ctx, client, "produce", broker, topic, partitions, per_codec, ",".join(CODECS))
        n = produced_and_consumed(ctx, client, events, topic, partitions, broker, problems)
        check(n == per_codec * len(CODECS), "%s: %d records sent, want %d" % (client, n, per_codec * len(CODECS)))
    check(not problems, "records read back right, but batches were not compressed as asked:\n      "
          + "\n      ".join(problems))


def check_group_run(what, by_name, partitions, n, start):
    """Every record written in this run read once; returns {partition: next offset} read."""
    errors = by_name.get("group-error", []) + by_name.get("fetch-error", [])
    check(not errors, "%s: the client reported %r" % (what, errors[:3]))
    got = by_name.get("got", [])
    seen = {}
    per_member = {}
    for e in got:
        key = (e["p"], e["o"])
        check(key not in seen, "%s: offset %d of partition %d read twice (by %s and %s)"
              % (what, e["o"], e["p"], seen.get(key), e["member"]))
        seen[key] = e["member"]
        per_member.setdefault(e["member"], set()).add(e["p"])
    check(len(got) == n, "%s: %d records read, %d written" % (what, len(got), n))
    ends = {}
    for p in range(partitions):
        offsets = sorted(o for (q, o) in seen if q == p)
        want_from = start.get(p, 0)
        check(offsets and offsets[0] == want_from, "%s: partition %d read from offset %r, want %d"
              % (what, p, offsets[:1], want_from))
        check_offsets_contiguous("%s partition %d" % (what, p), offsets, want_from)
        ends[p] = offsets[-1] + 1
    members = sorted(per_member)
    for i, a in enumerate(members):
        for b in members[i + 1:]:
            check(not per_member[a] & per_member[b], "%s: members %s and %s both read partitions %r"
                  % (what, a, b, sorted(per_member[a] & per_member[b])))
    committed = {}
    for e in by_name.get("committed", []):
        check(e.get("error") is None, "%s: member %s commit failed: %s" % (what, e["member"], e.get("error")))
        committed.update({int(p): o for p, o in e["offsets"].items()})
    check(committed == ends, "%s: committed %r, read up to %r" % (what, committed, ends))
    return ends, per_member


def check_group_of_two(what, by_name, partitions, n, ctx=None, shares_by_size=False):
    """Two members shared the partitions and read the n records between them; returns
    {partition: next offset} read. With ctx, the stable assignments and the commits are
    observed for the comparison with Kafka (by share sizes alone where the client's
    assignor follows the order of the member ids, which the broker generates)."""
    stable = one(by_name, "stable", what)
    shares = [sorted(ps) for ps in stable["members"].values()]
    check(len(stable["members"]) == 2 and all(stable["members"].values()),
          "%s: group %r, want two members with partitions each" % (what, stable["members"]))
    ends, per_member = check_group_run(what, by_name, partitions, n, {})
    check(len(per_member) == 2, "%s: records read by %r, want both members" % (what, sorted(per_member)))
    if ctx is not None:
        ctx.observe("%s: the stable group's assignments" % what,
                    sorted(len(ps) for ps in shares) if shares_by_size else sorted(shares))
        ctx.observe("%s: committed" % what, ends)
    return ends


def scenario_go_groups(ctx):
    """Two members share a topic and commit; a member started later resumes at the commits."""
    broker = ctx.broker(overrides=["group.initial.rebalance.delay.ms=0"])
    partitions, first, second = 4, 200, 120
    create_topics(broker, [("go-group-" + c, partitions, {}) for c in CLIENTS])
    for client in CLIENTS:
        topic, group = "go-group-" + client, "go-group-" + client
        _, ev = go_run(ctx, client, "group-share", broker, topic, group, partitions, first)
        # franz-go balances cooperative-sticky: which share a member keeps follows the
        # order of the member ids, which the broker generates; only the sizes are its.
        ends = check_group_of_two("%s group of two" % client, ev, partitions, first, ctx,
                                  shares_by_size=client == "franz")

        _, ev = go_run(ctx, client, "group-resume", broker, topic, group, partitions, second)
        ends2, _ = check_group_run("%s member restarted" % client, ev, partitions, second, ends)
        ctx.observe("%s member restarted: read (partition, offset, value), committed" % client,
                    [records_summary(sorted([e["p"], e["o"], e["value"]] for e in ev.get("got", []))), ends2])
        for e in ev.get("got", []):
            check(b64(e["value"]).startswith(b"resume-"), "%s: the restarted member read %r, written before"
                  % (client, b64(e["value"])))


def check_idempotent_batches(topic, partitions, broker, producers, client):
    """Every batch on disk carries a producer id; under each, sequences start at 0 and count the
    partition's records without gaps. producers: how many producer ids the client used."""
    for p in range(partitions):
        next_sequence = {}
        for b in disk_batches(broker, topic, p):
            pid = b["producer_id"]
            check(pid >= 0 and b["producer_epoch"] >= 0,
                  "%s-%d: batch at offset %d has producer id %d epoch %d, want an id (%s writes without "
                  "one, silently, when the broker does not offer InitProducerId)"
                  % (topic, p, b["base_offset"], pid, b["producer_epoch"], client))
            want = next_sequence.get(pid, 0)
            check(b["base_sequence"] == want, "%s-%d: batch at offset %d of producer %d has base sequence %d, "
                  "want %d" % (topic, p, b["base_offset"], pid, b["base_sequence"], want))
            next_sequence[pid] = want + b["count"]
        check(len(next_sequence) == producers, "%s-%d: %d producer ids, want one per codec (%d)"
              % (topic, p, len(next_sequence), producers))


def scenario_go_franz_idempotent(ctx):
    """franz-go's default producer is idempotent: its batches carry a producer id and sequences."""
    broker = ctx.broker()
    _, ev = go_run(ctx, "franz", "metadata", broker, "go-idempotent")
    if "22" not in one(ev, "versions", "franz metadata")["versions"] and not FORCE_IDEMPOTENT:
        ctx.skip_check("go_franz_idempotent: the broker does not offer InitProducerId (key 22); "
                       "RUNNEL_GO_IDEMPOTENT=1 checks anyway")
        return
    partitions, per_codec = 3, 100
    topic = "go-idempotent"
    create_topics(broker, [(topic, partitions, {})])
    events, _ = go_run(ctx, "franz-idem", "produce", broker, topic, partitions, per_codec, "none,zstd")
    produced_and_consumed(ctx, "franz-idem", events, topic, partitions, broker, None)
    # One producer id per kgo client (the program uses one per codec).
    check_idempotent_batches(topic, partitions, broker, 2, "kgo")


def scenario_go_sarama_idempotent(ctx):
    """sarama's idempotent producer (acks all, one request in flight): producer ids, gapless sequences."""
    broker = ctx.broker()
    partitions, per_codec = 3, 100
    topic = "go-sarama-idempotent"
    create_topics(broker, [(topic, partitions, {})])
    events, _ = go_run(ctx, "sarama-idem", "produce", broker, topic, partitions, per_codec, "none,zstd")
    produced_and_consumed(ctx, "sarama-idem", events, topic, partitions, broker, None)
    # One SyncProducer per codec, each with its producer id; requests of ten
    # records, so each partition has many batches per producer.
    batches = disk_batches(broker, topic, 0)
    check(len(batches) >= 8, "%s-0: %d batches, want several per producer" % (topic, len(batches)))
    check_idempotent_batches(topic, partitions, broker, 2, "sarama")


def scenario_go_txn(ctx):
    """franz-go commits and aborts; franz-go and sarama read_committed see only what was committed."""
    broker = ctx.broker()
    topic, partitions, plan, per_txn = "go-txn", 2, "ccacaac", 10
    create_topics(broker, [(topic, partitions, {})])
    events, _ = go_run(ctx, "franz", "txn-produce", broker, topic, partitions, "go-txn-franz", plan, per_txn)
    sent = sorted((e for e in events if e["event"] == "sent"), key=lambda e: (e["p"], e["o"]))
    check(len(sent) == len(plan) * per_txn, "franz sent %d records, want %d" % (len(sent), len(plan) * per_txn))
    want = {p: [e["value"] for e in sent if e["p"] == p and e["commit"]] for p in range(partitions)}
    every = {p: [e["value"] for e in sent if e["p"] == p] for p in range(partitions)}
    # The plan ends with a commit: an aborted record a reader let through
    # would take the place of a committed one in the first len(want) read.
    check(plan.endswith("c") and want != every, "the plan %r cannot tell readers apart" % plan)

    def read(client, isolation, expected):
        counts = ",".join(str(len(expected[p])) for p in range(partitions))
        ev, _ = go_run(ctx, client, "txn-consume", broker, topic, isolation, counts)
        got = {p: [] for p in range(partitions)}
        for e in ev:
            if e["event"] == "got":
                got[e["p"]].append(e["value"])
        ctx.observe("%s %s reads" % (client, isolation), got)
        check(got == expected, "%s %s read %r, want %r" % (client, isolation, got, expected))

    ctx.observe("franz acknowledged (partition, offset, value, committed)",
                [[e["p"], e["o"], e["value"], e["commit"]] for e in sent])
    read("franz", "read_committed", want)
    read("sarama", "read_committed", want)
    read("franz", "read_uncommitted", every)
    rd = read_all(broker, topic, list(range(partitions)), "read_committed", expect=sum(map(len, want.values())))
    ctx.observe("librdkafka read_committed reads", rd)
    check(rd == want, "librdkafka read_committed read %r, want %r" % (rd, want))
    broker.check_alive()


def scenario_go_sarama_txn(ctx):
    """sarama commits and aborts, sending offsets too; franz-go read_committed sees only the committed."""
    broker = ctx.broker()
    topic, partitions, plan, per_txn = "go-sarama-txn", 2, "cacaac", 10
    create_topics(broker, [(topic, partitions, {})])
    events, by_name = go_run(ctx, "sarama", "txn-produce", broker, topic, partitions, "go-txn-sarama", plan, per_txn)
    sent = sorted((e for e in events if e["event"] == "sent"), key=lambda e: (e["p"], e["o"]))
    check(len(sent) == len(plan) * per_txn, "sarama sent %d records, want %d" % (len(sent), len(plan) * per_txn))
    check(len({(e["p"], e["o"]) for e in sent}) == len(sent), "sarama was told the same offset twice")
    want = {p: [e["value"] for e in sent if e["p"] == p and e["commit"]] for p in range(partitions)}
    every = {p: [e["value"] for e in sent if e["p"] == p] for p in range(partitions)}
    check(plan.endswith("c") and want != every, "the plan %r cannot tell readers apart" % plan)

    # The group's offset of partition 0 moves with committed transactions only.
    committed = -1  # none yet
    offsets = by_name.get("offsets", [])
    ctx.observe("sarama acknowledged (partition, offset, value, committed)",
                [[e["p"], e["o"], e["value"], e["commit"]] for e in sent])
    ctx.observe("the group's committed offset after each transaction (committed?, sent, committed)",
                [[e["commit"], e["sent"], e["committed"]] for e in offsets])
    check(len(offsets) == len(plan), "%d offsets events for %d transactions" % (len(offsets), len(plan)))
    for e in offsets:
        if e["commit"]:
            committed = e["sent"]
        check(e["committed"] == committed, "after transaction %d (%s) sent offset %d, the group's committed "
              "offset is %d, want %d (%d polls)" % (e["txn"], "committed" if e["commit"] else "aborted",
                                                   e["sent"], e["committed"], committed, e["polls"]))

    def read(client, isolation, expected):
        counts = ",".join(str(len(expected[p])) for p in range(partitions))
        ev, _ = go_run(ctx, client, "txn-consume", broker, topic, isolation, counts)
        got = {p: [] for p in range(partitions)}
        for e in ev:
            if e["event"] == "got":
                got[e["p"]].append(e["value"])
        ctx.observe("%s %s reads" % (client, isolation), got)
        check(got == expected, "%s %s read %r, want %r" % (client, isolation, got, expected))

    read("franz", "read_committed", want)
    read("franz", "read_uncommitted", every)
    broker.check_alive()


SCENARIOS = [
    ("go_metadata", scenario_go_metadata),
    ("go_admin", scenario_go_admin),
    ("go_produce", scenario_go_produce),
    ("go_groups", scenario_go_groups),
    ("go_franz_idempotent", scenario_go_franz_idempotent),
    ("go_txn", scenario_go_txn),
    ("go_sarama_idempotent", scenario_go_sarama_idempotent),
    ("go_sarama_txn", scenario_go_sarama_txn),
]
