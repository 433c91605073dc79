"""compat-tests/ck_clients.py - the current librdkafka, 2.16, through the PyPI confluent-kafka wheel.

Debian's librdkafka 2.0.2 (kcat, python3-confluent-kafka 1.7.0) is what most
of the suite drives; confluent-kafka 2.16 from PyPI (compat-tests/
requirements.txt, in build/compat-venv) bundles librdkafka 2.16.0, which
speaks newer versions, has the admin calls of the last years and KIP-848
consumer groups. It speaks through ck_driver.py, run by the venv's
interpreter, in py_driver.py's shapes, so py_clients.py's stories tell
most of its stories and these add its own:

    ck_metadata      its ApiVersions probe (v3, answered as v3: librdkafka 2.16 sends v3
                     first, to Kafka 4.4 too), the versions it saw are those advertised;
                     DescribeCluster, Metadata (list_topics) and DescribeTopics agree:
                     one broker, broker 1 leads every partition
    ck_admin         create with configs, refuse it again, describe configs with their sources,
                     IncrementalAlterConfigs and AlterConfigs, add partitions, refuse fewer,
                     delete, DescribeTopics
    ck_produce       keys, null and empty keys and values, headers, CreateTime timestamps under
                     none/gzip/snappy/lz4/zstd, read back by assign from the beginning: same
                     records, same order, at the offsets acknowledged; batches compressed as asked
    ck_offsets_time  offsets_for_times and AdminClient.list_offsets (a timestamp, earliest,
                     latest, max timestamp) over increasing and shuffled timestamps in lz4 batches;
                     again after delete_records (DeleteRecords) moved the log starts, one past
                     the record with the largest timestamp, which Kafka still answers for -3
    ck_groups        two members share a topic and commit; after a broker restart a new member
                     resumes at the commits; the admin then lists and describes the group, lists
                     its offsets, alters them and deletes the group
    ck_idempotent    enable.idempotence: one producer id, gapless sequences, records once at
                     their offsets
    ck_txn           commit and abort, read_committed sees the committed; then
                     consume-transform-produce with send_offsets_to_transaction: the group's
                     offset moves with committed transactions only, and read_committed readers
                     of the output see each input record once
    ck_kip848        two members of a group.protocol=consumer group (KIP-848) share a topic and
                     commit; the group describes as a consumer group. Needs ConsumerGroupHeartbeat
                     (API 68): against a broker that does not advertise it the scenario is
                     skipped and says so, and the matrix shows "not advertised"

A missing wheel skips every scenario with how to install it (never a pass).
"""

from go_clients import b64, check_group_of_two, check_topic, one
from harness import BROKER_ID, Failure, check
from logs import create_topics
from py_clients import (admin_story, drive, groups_story, idempotent_story, metadata_story, present,
                        produce_story, text, txn_story)

CK = "ck"
WHAT = "librdkafka 2.16"
API_VERSIONS_SENT = 3  # librdkafka 2.16.0's first ApiVersions request, to runnel and to Kafka 4.4


def ck_scenario(fn):
    def scenario(ctx):
        if present(ctx, (CK,)):
            fn(ctx)
    scenario.__doc__ = fn.__doc__
    return scenario


@ck_scenario
def scenario_ck_metadata(ctx):
    """librdkafka 2.16 probes versions (ApiVersions v3), reads Metadata, DescribeCluster, DescribeTopics."""
    ev = metadata_story(ctx, (CK,))[CK]
    what = "%s metadata" % WHAT
    v = one(ev, "versions", what)
    check(v["requests"] and set(v["requests"]) == {API_VERSIONS_SENT},
          "%s: ApiVersions requests sent at versions %r, want v%d (librdkafka 2.16 against Kafka 4.4)"
          % (what, v["requests"], API_VERSIONS_SENT))
    check(v["responses"] == v["requests"], "%s: ApiVersions answers read as %r, the requests were %r"
          % (what, v["responses"], v["requests"]))
    md = one(ev, "metadata", what)
    listing = one(ev, "metadata-listing", what)
    check((listing["brokers"], listing["controller"], listing["cluster"]) == (md["brokers"], md["controller"],
                                                                              md["cluster"]),
          "%s: Metadata says brokers %r controller %r cluster %r, DescribeCluster %r %r %r"
          % (what, listing["brokers"], listing["controller"], listing["cluster"], md["brokers"], md["controller"],
             md["cluster"]))
    check(md["cluster"], "%s: no cluster id" % what)
    check_topic("%s list_topics" % WHAT, one(ev, "topic-listing", what), 3)
    described = one(ev, "topic", what)
    check(described["internal"] is False, "%s: md-ck described as internal" % what)
    check(described["topic_id"] and described["topic_id"] != "AAAAAAAAAAAAAAAAAAAAAA",
          "%s: DescribeTopics gave md-ck the topic id %r" % (what, described["topic_id"]))


@ck_scenario
def scenario_ck_admin(ctx):
    """librdkafka 2.16 admin: create with configs, describe, alter both ways, add partitions, delete."""
    admin_story(ctx, (CK,))


@ck_scenario
def scenario_ck_produce(ctx):
    """librdkafka 2.16 writes keys, nulls, headers, timestamps under every codec; read back by assign."""
    produce_story(ctx, (CK,))


def first_at_or_after(stamps, target, start=0):
    """Kafka's answer to a timestamp: the first offset from the log start whose timestamp is at
    least target, and that timestamp; (-1, -1) when there is none."""
    for offset in range(start, len(stamps)):
        if stamps[offset] >= target:
            return offset, stamps[offset]
    return -1, -1


@ck_scenario
def scenario_ck_offsets_time(ctx):
    """librdkafka 2.16 offsets_for_times and list_offsets: timestamps, earliest, latest, max; after DeleteRecords."""
    broker = ctx.broker()
    topic, count = "ck-times", 500
    create_topics(broker, [(topic, 2, {})])
    _, ev = drive(ctx, CK, "offsets-time", broker, topic, count)
    stamps = {0: {}, 1: {}}
    for e in ev.get("sent", []):
        stamps[e["p"]][e["o"]] = e["ts"]
    for p in (0, 1):
        check(sorted(stamps[p]) == list(range(count)), "%s: partition %d acknowledged offsets %r..., want 0..%d"
              % (WHAT, p, sorted(stamps[p])[:5], count - 1))
        stamps[p] = [stamps[p][o] for o in range(count)]
    base = min(stamps[0])
    start = {"before-delete": {0: 0, 1: 0}, "after-delete": {}}
    for deleted in ev.get("deleted", []):
        check(deleted["low"] == deleted["before"], "%s: delete_records of partition %d before offset %d answered "
              "low watermark %d" % (WHAT, deleted["p"], deleted["before"], deleted["low"]))
        start["after-delete"][deleted["p"]] = deleted["before"]
    check(sorted(start["after-delete"]) == [0, 1], "%s: delete_records answered for %r"
          % (WHAT, sorted(start["after-delete"])))
    for e in ev.get("watermarks", []):
        want = (start[e["phase"]][e["p"]], count)
        check((e["low"], e["high"]) == want, "%s: partition %d watermarks %d..%d %s, want %d..%d"
              % (WHAT, e["p"], e["low"], e["high"], e["phase"], want[0], want[1]))
    wrong = []
    answers = ev.get("offset-for-time", [])
    check(len(answers) >= 80, "%s: %d answers to offset queries" % (WHAT, len(answers)))
    for e in answers:
        p, log_start = e["p"], start[e["phase"]][e["p"]]
        if e["spec"] == "timestamp":
            offset, ts = first_at_or_after(stamps[p], e["target"], log_start)
        elif e["spec"] == "max_timestamp":
            # Kafka answers from the segments still there, below the log start or not
            # (UnifiedLog.fetchOffsetByTimestamp): partition 1's is a deleted record.
            ts = max(stamps[p])
            offset = stamps[p].index(ts)
        else:
            offset, ts = {"earliest": log_start, "latest": count}[e["spec"]], None
        got_ts = e.get("timestamp") if ts is not None else None
        want_ts = ts if "timestamp" in e and ts is not None else None
        if e["error"] or (e["offset"], got_ts) != (offset, want_ts):
            wrong.append("%s %s partition %d %s%s: offset %r timestamp %r error %r, want offset %d timestamp %r"
                         % (e["phase"], e["api"], p, e["spec"],
                            "" if e["target"] is None else " base%+d" % (e["target"] - base),
                            e["offset"], got_ts, e["error"], offset, want_ts))
    check(not wrong, "%d of %d answers differ from Kafka's (base = %d; partition 0 holds base+10*offset, "
          "partition 1 the same shuffled):\n      %s" % (len(wrong), len(answers), base, "\n      ".join(wrong)))


@ck_scenario
def scenario_ck_groups(ctx):
    """librdkafka 2.16: two members share and commit; after a restart one resumes; the admin on the group."""
    broker = groups_story(ctx, (CK,))
    topic = group = "group-ck"
    partitions = 4
    _, ev = drive(ctx, CK, "group-admin", broker, topic, group, partitions)
    what = "%s group admin" % WHAT
    listed = one(ev, "groups-listed", what)
    check(not listed["errors"], "%s: list_consumer_groups errors %r" % (what, listed["errors"]))
    check(listed["groups"].get(group) == {"state": "EMPTY", "type": "CLASSIC", "simple": False},
          "%s: list_consumer_groups says %r of %s, want an empty classic consumer group"
          % (what, listed["groups"].get(group), group))
    d = one(ev, "described", what)
    check(d["error"] is None, "%s: describe_consumer_groups failed: %s" % (what, d["error"]))
    check((d["state"], d["type"], d["simple"], d["members"], d["coordinator"]) == ("EMPTY", "CLASSIC", False, [],
                                                                                    BROKER_ID),
          "%s: described %r, want an empty classic consumer group coordinated by broker %d" % (what, d, BROKER_ID))
    offsets = {e["step"]: e for e in ev.get("group-offsets", [])}
    ends = {"%s:%d" % (topic, e["p"]): e["offset"] for e in ev.get("end", [])}
    check(len(ends) == partitions, "%s: end offsets %r" % (what, ends))
    check(offsets["committed"]["offsets"] == ends, "%s: list_consumer_group_offsets %r, want %r (every record "
          "read and committed)" % (what, offsets["committed"]["offsets"], ends))
    altered = {"%s:0" % topic: 1, "%s:%d" % (topic, partitions - 1): 2}
    check(offsets["altered"]["offsets"] == altered and not offsets["altered"]["errors"],
          "%s: alter_consumer_group_offsets answered %r %r" % (what, offsets["altered"]["offsets"],
                                                                offsets["altered"]["errors"]))
    check(offsets["after-alter"]["offsets"] == dict(ends, **altered),
          "%s: offsets after the alter %r, want %r" % (what, offsets["after-alter"]["offsets"], dict(ends, **altered)))
    deleted = one(ev, "group-deleted", what)
    check(deleted["error"] is None, "%s: delete_consumer_groups failed: %s" % (what, deleted["error"]))
    check(group not in one(ev, "groups-after-delete", what)["groups"], "%s: %s still listed after its deletion"
          % (what, group))
    gone = one(ev, "described-after-delete", what)
    # Kafka 4.4 answers DescribeGroups for a group it does not know with state Dead (v5, what librdkafka sends).
    check(gone["error"] is None and gone["state"] == "DEAD" and gone["members"] == [],
          "%s: a deleted group described as %r, want state DEAD" % (what, gone))


@ck_scenario
def scenario_ck_idempotent(ctx):
    """librdkafka 2.16's idempotent producer: one producer id, gapless sequences, records once."""
    idempotent_story(ctx, (CK,))


@ck_scenario
def scenario_ck_txn(ctx):
    """librdkafka 2.16 commits and aborts; send_offsets_to_transaction moves the group with commits only."""
    broker = txn_story(ctx, (CK,))
    if broker is None:
        return
    source, sink, group, plan, per_txn = "ck-eos-in", "ck-eos-out", "ck-eos", "cacaac", 10
    create_topics(broker, [(source, 1, {}), (sink, 1, {})])
    _, ev = drive(ctx, CK, "txn-offsets", broker, source, sink, group, plan, per_txn)
    what = "%s consume-transform-produce" % WHAT
    offsets = ev.get("offsets", [])
    check(len(offsets) == len(plan), "%s: %d offsets events for %d transactions" % (what, len(offsets), len(plan)))
    committed = -1001  # OFFSET_INVALID: the group has no offset yet
    for e in offsets:
        if e["commit"]:
            committed = e["sent"]
        check(e["committed"] == committed, "%s: after transaction %d (%s) sent offset %d, the group's committed "
              "offset is %r, want %d (%d polls)" % (what, e["txn"], "committed" if e["commit"] else "aborted",
                                                    e["sent"], e["committed"], committed, e["polls"]))
    # Each input record once in the output, in order: the aborted transactions' output and
    # offsets vanished, and their input was read again.
    want = ["out-in-%d" % i for i in range(plan.count("c") * per_txn)]
    read, _ = drive(ctx, CK, "txn-consume", broker, sink, "read_committed", len(want))
    got = [text(e) for e in read if e["event"] == "got"]
    check(got == want, "%s: read_committed read %r, want %r" % (what, got, want))
    broker.check_alive()


@ck_scenario
def scenario_ck_kip848(ctx):
    """librdkafka 2.16 KIP-848 group (group.protocol=consumer): two members share a topic and commit."""
    broker = ctx.broker()
    if 68 not in broker.api_keys:
        ctx.skip_check("not advertised: the broker's ApiVersions lacks ConsumerGroupHeartbeat (API 68), "
                       "which a group.protocol=consumer member needs")
        return
    topic = group = "ck-kip848"
    partitions, n = 4, 200
    create_topics(broker, [(topic, partitions, {})])
    _, ev = drive(ctx, CK, "kip848", broker, topic, group, partitions, n)
    what = "%s KIP-848 group of two" % WHAT
    ends = check_group_of_two(what, ev, partitions, n)
    d = one(ev, "described", what)
    check(d["error"] is None and (d["type"], d["state"], d["members"]) == ("CONSUMER", "EMPTY", []),
          "%s: described %r, want an empty consumer (KIP-848) group, its members gone" % (what, d))
    committed = one(ev, "group-offsets", what)["offsets"]
    want = {"%s:%d" % (topic, p): o for p, o in ends.items()}
    check(committed == want, "%s: list_consumer_group_offsets %r, want %r" % (what, committed, want))
    for e in ev.get("got", []):
        if not b64(e["value"]).startswith(b"share-"):
            raise Failure("%s: read %r, not written by this story" % (what, b64(e["value"])))


SCENARIOS = [
    ("ck_metadata", scenario_ck_metadata),
    ("ck_admin", scenario_ck_admin),
    ("ck_produce", scenario_ck_produce),
    ("ck_offsets_time", scenario_ck_offsets_time),
    ("ck_groups", scenario_ck_groups),
    ("ck_idempotent", scenario_ck_idempotent),
    ("ck_txn", scenario_ck_txn),
    ("ck_kip848", scenario_ck_kip848),
]
