"""compat-tests/js_clients.py - kafkajs 2.2.4's idempotent and transactional producers.

One driver, compat-tests/kafkajs_txn.js, speaks for kafkajs; these stories decide:

    kafkajs_idempotent  an idempotent producer (acks -1, one request in flight) writes over three
                        partitions: every batch on disk carries one producer id and sequences
                        without gaps from 0, and kcat reads every record once, at the offset
                        kafkajs was told
    kafkajs_txn         a transactional producer commits some transactions and aborts others over
                        two partitions; a kafkajs group at read_committed (readUncommitted false)
                        reads exactly the committed records, one at read_uncommitted every record;
                        librdkafka at read_committed agrees
    kafkajs_eos         consume-transform-produce with kafkajs alone: a read_committed group reads
                        the input, each chunk is written transformed in a transaction that also
                        sends the group's next offset (transaction.sendOffsets); every third
                        chunk is first tried and aborted. The group's committed offset does not
                        move on an abort and moves to the sent offset on a commit; the output
                        holds each input record transformed exactly once (librdkafka
                        read_committed) and the group ends at the input's end

kafkajs 2.2.4 speaks InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
and TxnOffsetCommit at versions 0-1 only.
"""

import json
import os

from eos import group_offsets, produce_input, read_committed
from harness import HERE, Failure, check
from logs import create_topics, disk_batches, kcat_consume
from transactions import read_all

DRIVER = os.path.join(HERE, "kafkajs_txn.js")
DRIVER_TIMEOUT_S = 55  # the driver gives up on its own after 45 s
GROUP_OVERRIDES = ["group.initial.rebalance.delay.ms=0"]


def kafkajs(ctx, mode, broker, *args):
    """Runs one mode of kafkajs_txn.js; its JSON result."""
    module = os.path.join(HERE, "node_modules", "kafkajs", "package.json")
    check(os.path.exists(module), "kafkajs is not installed (bash tools/deps.sh test runs npm ci)")
    code, out, _ = ctx.run(["node", DRIVER, mode, str(broker.port)] + [str(a) for a in args],
                           timeout_s=DRIVER_TIMEOUT_S, check_exit=False)
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise Failure("kafkajs_txn.js %s printed no JSON result (%s)" % (mode, e))
    check(code == 0 and "failed" not in r,
          "kafkajs %s: step %r failed: %s" % (mode, r.get("failed"), json.dumps(r.get("error"))))
    return r


def per_partition(messages, partitions):
    """[{partition, offset, value}] -> {partition: [values in offset order]}."""
    out = {p: [] for p in partitions}
    for m in sorted(messages, key=lambda m: (m["partition"], m["offset"])):
        out[m["partition"]].append(m["value"])
    return out


def scenario_kafkajs_idempotent(ctx):
    """kafkajs's idempotent producer: batches carry its producer id and gapless sequences; records once."""
    broker = ctx.broker()
    topic, partitions, sends, per_send = "kjs-idempotent", 3, 12, 25
    create_topics(broker, [(topic, partitions, None)])
    r = kafkajs(ctx, "idempotent", broker, topic, partitions, sends, per_send)
    sent = r["messages"]
    check(len(sent) == sends * per_send, "kafkajs reported %d records, sent %d" % (len(sent), sends * per_send))

    read = kcat_consume(ctx, broker, topic, list(range(partitions)))
    ctx.observe("kafkajs acknowledged (partition, offset, value)",
                sorted([m["partition"], m["offset"], m["value"]] for m in sent))
    ctx.observe("kcat reads, by partition (offset, value)",
                {p: [[rec["offset"], rec["payload"]] for rec in read[p]] for p in range(partitions)})
    producer_ids = set()
    for p in range(partitions):
        mine = sorted((m for m in sent if m["partition"] == p), key=lambda m: m["offset"])
        got = [(rec["offset"], rec["payload"]) for rec in read[p]]
        want = [(m["offset"], m["value"]) for m in mine]
        check(got == want, "%s-%d: kcat read %d records %r..., kafkajs acknowledged %d %r..."
              % (topic, p, len(got), got[:3], len(want), want[:3]))

        next_sequence = 0
        batches = disk_batches(broker, topic, p)
        check(batches, "%s-%d: no batches on disk" % (topic, p))
        for b in batches:
            check(b["producer_id"] >= 0 and b["producer_epoch"] >= 0,
                  "%s-%d: batch at offset %d has producer id %d epoch %d, want kafkajs's"
                  % (topic, p, b["base_offset"], b["producer_id"], b["producer_epoch"]))
            producer_ids.add(b["producer_id"])
            check(b["base_sequence"] == next_sequence,
                  "%s-%d: batch at offset %d has base sequence %d, want %d (sequences count the partition's "
                  "records from 0, without gaps)" % (topic, p, b["base_offset"], b["base_sequence"], next_sequence))
            next_sequence += b["count"]
        check(next_sequence == len(mine), "%s-%d: sequences reach %d, %d records sent"
              % (topic, p, next_sequence, len(mine)))
    check(len(producer_ids) == 1, "batches name producer ids %r, want kafkajs's one" % sorted(producer_ids))
    broker.check_alive()


def scenario_kafkajs_txn(ctx):
    """kafkajs commits and aborts; kafkajs and librdkafka at read_committed see only the committed."""
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic, partitions, plan, per_txn = "kjs-txn", 2, "cacaac", 10
    create_topics(broker, [(topic, partitions, None)])
    r = kafkajs(ctx, "txn", broker, topic, partitions, "kjs-txn-producer", plan, per_txn)
    sent = r["messages"]
    check(len(sent) == len(plan) * per_txn, "kafkajs sent %d records, want %d" % (len(sent), len(plan) * per_txn))
    parts = list(range(partitions))
    want = per_partition([m for m in sent if m["commit"]], parts)
    every = per_partition(sent, parts)
    check(plan.endswith("c") and want != every, "the plan %r cannot tell readers apart" % plan)
    # Offsets: every record at its own, markers between transactions.
    offsets = [(m["partition"], m["offset"]) for m in sent]
    check(len(set(offsets)) == len(offsets), "kafkajs was told the same offset twice: %r" % sorted(offsets))

    ctx.observe("kafkajs acknowledged (partition, offset, value, committed)",
                sorted([m["partition"], m["offset"], m["value"], m["commit"]] for m in sent))

    def check_read(who, messages, expected):
        ctx.observe("%s reads (partition, offset, value)" % who,
                    sorted([m["partition"], m["offset"], m["value"]] for m in messages))
        got = per_partition(messages, parts)
        check(len(messages) == sum(map(len, expected.values())) and got == expected,
              "%s read %d records %r, want %r" % (who, len(messages), got, expected))
        for m in messages:
            check(m["offset"] == next(s["offset"] for s in sent if s["value"] == m["value"]),
                  "%s read %r at offset %d, kafkajs was told otherwise" % (who, m["value"], m["offset"]))

    check_read("kafkajs read_committed", r["readCommitted"], want)
    check_read("kafkajs read_uncommitted", r["readUncommitted"], every)
    rd = read_all(broker, topic, parts, "read_committed", expect=sum(map(len, want.values())))
    ctx.observe("librdkafka read_committed reads", rd)
    check(rd == want, "librdkafka read_committed read %r, want %r" % (rd, want))
    broker.check_alive()


def scenario_kafkajs_eos(ctx):
    """kafkajs consume-transform-produce with sendOffsets: output exactly once, offsets move on commit only."""
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    in_topic, out_topic, group, partitions, count, chunk = "kjs-eos-in", "kjs-eos-out", "kjs-eos-app", 2, 60, 10
    create_topics(broker, [(in_topic, partitions, None), (out_topic, partitions, None)])
    sent = produce_input(broker, in_topic, partitions, count)
    r = kafkajs(ctx, "eos", broker, in_topic, out_topic, group, "kjs-eos-tx", count, chunk)
    txns = r["transactions"]
    check(r["processed"] == count, "kafkajs processed %d input records, want %d" % (r["processed"], count))
    committed = {p: 0 for p in range(partitions)}  # the group's offsets as the transactions leave them
    aborts = 0
    for t in txns:
        p = t["partition"]
        check(t["first"] == committed[p], "transaction %d starts at %d/%d, the group had committed %d"
              % (t["txn"], p, t["first"], committed[p]))
        if t["commit"]:
            committed[p] = t["next"]
            check(t["committedAfter"] == t["next"], "after transaction %d committed offset %d of %s-%d, the group "
                  "reads %r (after %d polls)" % (t["txn"], t["next"], in_topic, p, t["committedAfter"], t["polls"]))
        else:
            aborts += 1
            # A partition without a committed offset reads as -1.
            before = committed[p] if committed[p] > 0 else -1
            check(t["committedAfter"] == before,
                  "after transaction %d sending offset %d of %s-%d was aborted, the group reads %r, want %d"
                  % (t["txn"], t["next"], in_topic, p, t["committedAfter"], before))
    check(aborts > 0, "no transaction was aborted: %r" % txns)
    # Which chunk is tried and aborted first follows the order the group's
    # fetches come in: observed are the committed transactions, by partition.
    ctx.observe("committed transactions (partition, first, next, committed after)",
                sorted([t["partition"], t["first"], t["next"], t["committedAfter"]] for t in txns if t["commit"]))
    ctx.observe("aborted transactions leave the group's offset (partition, first, committed after)",
                sorted([t["partition"], t["first"], t["committedAfter"]] for t in txns if not t["commit"]))
    want_offsets = {p: len(v) for p, v in sent.items()}
    check(committed == want_offsets, "the transactions committed %r, want the input's end %r"
          % (committed, want_offsets))
    check(group_offsets(broker, group, in_topic, range(partitions)) == want_offsets,
          "OffsetFetch of %s does not answer the input's end %r" % (group, want_offsets))

    want = sorted(v.replace("in-", "out-").upper() for vs in sent.values() for v in vs)
    got = read_committed(broker, out_topic, partitions, len(want))
    ctx.observe("the output read_committed, sorted", sorted(got))
    dups = sorted({v for v in got if got.count(v) > 1})
    missing = sorted(set(want) - set(got))
    check(not dups and not missing and sorted(got) == want,
          "output read_committed: %d records for %d inputs; duplicated %r, missing %r"
          % (len(got), len(want), dups[:10], missing[:10]))
    ctx.say("%d transactions committed, %d aborted" % (len(txns) - aborts, aborts))
    broker.check_alive()


SCENARIOS = [
    ("kafkajs_idempotent", scenario_kafkajs_idempotent),
    ("kafkajs_txn", scenario_kafkajs_txn),
    ("kafkajs_eos", scenario_kafkajs_eos),
]
