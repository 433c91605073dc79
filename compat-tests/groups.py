"""compat-tests/groups.py - classic consumer groups and committed offsets, told with real clients.

    groups_range              three librdkafka consumers (one process each) share a 6-partition
    groups_roundrobin         topic with that assignor: every partition to exactly one member;
    groups_cooperative_sticky one is SIGKILLed (no LeaveGroup) and its partitions move to the
                              others after its session timeout; one closes (LeaveGroup) and its
                              partitions move at once; cooperative-sticky survivors keep theirs
    groups_kafka_python       kafka-python 2.0.2: a group of two, assignment, rebalance on close
    groups_kafkajs            a kafkajs 2.2.4 group consumes a topic whole and commits its end
    groups_kcat               kcat -G consumes a topic whole as a group and commits its end
    groups_offsets_restart    commit K of N, stop the broker, restart it: the group resumes at
                              what it committed and reads exactly the N-K others
    groups_describe           DescribeGroups / ListGroups (kafka-python and librdkafka admin)
                              show the members, Stable, the protocol and the assignments the
                              members report; Empty after they leave, gone after DeleteGroups

Every broker here runs with group.initial.rebalance.delay.ms=0, and every
member with a 6 s session timeout (the smallest Kafka accepts by default,
group.min.session.timeout.ms) and 0.5 s heartbeats, so a story takes seconds.

Members that must outlive a call (to be killed or closed while the others
watch) run compat-tests/group_member.py, one process each, and print their
assignment as it changes; their times are CLOCK_MONOTONIC, comparable with
this process's time.monotonic().
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from harness import HERE, Failure, admin_client, check, eventually, kafka_python, records_summary
from logs import create_topics, kp_producer

GROUP_OVERRIDES = ["group.initial.rebalance.delay.ms=0"]
SESSION_MS = 6000
HEARTBEAT_S = 0.5
# A SIGKILLed member is expired between session - heartbeat and session after
# its last heartbeat; the others learn at their next heartbeat and rejoin.
KILL_EARLIEST_S = SESSION_MS / 1000.0 - HEARTBEAT_S - 0.5
KILL_LATEST_S = SESSION_MS / 1000.0 + 3.0
# A member that leaves says so: the others have its partitions well before a session timeout.
CLOSE_LATEST_S = SESSION_MS / 1000.0 / 2
MEMBER_DEADLINE_S = 80
STDERR_LINES = 60


# ---------------------------------------------------------------------------
# Members in processes of their own.


class Member:
    """One group_member.py process; its assignment events are read as they come."""

    def __init__(self, ctx, broker, client, group, topic, strategy, client_id):
        self.ctx = ctx
        self.client_id = client_id
        self.argv = [sys.executable, os.path.join(HERE, "group_member.py"), "--client", client,
                     "--bootstrap", broker.bootstrap, "--group", group, "--topic", topic,
                     "--strategy", strategy, "--client-id", client_id,
                     "--session-ms", str(SESSION_MS), "--deadline-s", str(MEMBER_DEADLINE_S)]
        self.events = []
        self.stderr = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=HERE, text=True, bufsize=1,
                                     start_new_session=True)
        self.readers = [threading.Thread(target=self._read_stdout, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self.readers:
            t.start()
        self.how_ended = None

    def _read_stdout(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.rstrip()}
            with self.lock:
                self.events.append(event)

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self.lock:
                self.stderr.append(line.rstrip())
                if len(self.stderr) > 4 * STDERR_LINES:
                    del self.stderr[:STDERR_LINES]

    def latest(self):
        """(partitions, monotonic time) of the last assignment reported, or (None, None)."""
        with self.lock:
            for e in reversed(self.events):
                if e.get("event") == "assignment":
                    return e["partitions"], e["t"]
        return None, None

    def assignments_since(self, t):
        with self.lock:
            return [e["partitions"] for e in self.events if e.get("event") == "assignment" and e["t"] >= t]

    def errors(self):
        with self.lock:
            return [e for e in self.events if e.get("event") in ("error", "garbage")]

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: the member vanishes without a LeaveGroup."""
        self.how_ended = "SIGKILL"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self):
        """Asks the member to close its consumer (LeaveGroup) and exit."""
        self.how_ended = "close"
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()

    def wait_exit(self, timeout_s=15):
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Failure("member %s did not exit within %d s of being asked to close" % (self.client_id, timeout_s))
        check(code == 0, "member %s exited with %s after close" % (self.client_id, code))

    def finish(self):
        """Ends the process if still running (only this one, by its PID) and notes what it said."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # it closes its consumer when stdin ends
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for t in self.readers:
            t.join(timeout=5)
        with self.lock:
            events = list(self.events)
            stderr = self.stderr[-STDERR_LINES:]
        self.ctx.note("member %s (%s, exit %s)" % (self.client_id, self.how_ended or "finished", self.proc.returncode),
                      "$ %s\nevents:\n%s\nstderr (last %d lines):\n%s"
                      % (" ".join(self.argv), "\n".join(json.dumps(e) for e in events), len(stderr),
                         "\n".join(stderr)))


def start_members(ctx, broker, client, group, topic, strategy, prefix, count):
    return [Member(ctx, broker, client, group, topic, strategy, "%s-%d" % (prefix, i)) for i in range(count)]


def finish_members(members):
    for m in members:
        m.finish()


def views(members):
    return {m.client_id: m.latest()[0] for m in members}


def wait_balanced(members, partitions, what, timeout_s, stable_s=0.6):
    """Until the members' latest assignments split 0..partitions-1 between them, each
    partition to exactly one, as evenly as can be, unchanged for stable_s.

    Returns (the time the last of them got its share, {client id: partitions}).
    """
    deadline = time.monotonic() + timeout_s
    since = None
    last = None
    while True:
        now = time.monotonic()
        latest = {m.client_id: m.latest() for m in members}
        shares = {c: p for c, (p, _) in latest.items()}
        ok = all(p is not None for p in shares.values())
        if ok:
            flat = sorted(x for p in shares.values() for x in p)
            sizes = [len(p) for p in shares.values()]
            ok = flat == list(range(partitions)) and max(sizes) - min(sizes) <= 1
        if ok and shares == last:
            if now - since >= stable_s:
                return max(t for _, t in latest.values()), shares
        elif ok:
            since, last = now, shares
        else:
            since, last = None, None
        dead = [m.client_id for m in members if not m.alive()]
        if dead:
            raise Failure("%s: member(s) %s exited (views %r)" % (what, dead, shares))
        if now >= deadline:
            errors = {m.client_id: m.errors()[-3:] for m in members if m.errors()}
            raise Failure("%s: after %.0f s the members' assignments are %r, want each of partitions 0..%d "
                          "held by exactly one of them, evenly%s"
                          % (what, timeout_s, shares, partitions - 1,
                             "; client errors: %r" % errors if errors else ""))
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# Three librdkafka members: assignment, a crash, a clean leave.


def observed_shares(strategy, shares):
    """The assignments as observed. Which member gets which share follows the
    order of the member ids, which the broker generates; so the shares are
    observed as a sorted list, and for cooperative-sticky (whose shares after
    a departure depend on who held what) only their sizes."""
    if strategy == "cooperative-sticky":
        return sorted(len(p) for p in shares.values())
    return sorted(sorted(p) for p in shares.values())


def group_story(ctx, strategy, client="confluent", count=3, kill=True):
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic = "orders-%s" % strategy
    group = "billing-%s-%s" % (client, strategy)
    partitions = 6
    create_topics(broker, [(topic, partitions, {})])
    members = start_members(ctx, broker, client, group, topic, strategy, "%s-%s" % (client, strategy), count)
    try:
        started = time.monotonic()
        t, shares = wait_balanced(members, partitions, "%d %s members joining with %s" % (count, client, strategy),
                                  timeout_s=30)
        ctx.say("%s: %d members balanced %.1f s after start: %s" % (strategy, count, t - started, shares))
        ctx.observe("%d members joined: shares" % count, observed_shares(strategy, shares))
        live = list(members)

        if kill:
            victim = live.pop(0)
            before = views(live)
            t_kill = time.monotonic()
            victim.kill()
            t, shares = wait_balanced(live, partitions,
                                      "after SIGKILL of %s (%s)" % (victim.client_id, shares[victim.client_id]),
                                      timeout_s=KILL_LATEST_S + 5)
            moved = t - t_kill
            ctx.observe("after a SIGKILL: shares", observed_shares(strategy, shares))
            ctx.say("%s: SIGKILLed %s; its partitions moved after %.1f s (session %d ms): %s"
                    % (strategy, victim.client_id, moved, SESSION_MS, shares))
            check(moved <= KILL_LATEST_S,
                  "the SIGKILLed member's partitions moved %.1f s after the kill, want within the "
                  "session timeout (%.1f s) plus a rejoin (%.1f s in all)" % (moved, SESSION_MS / 1000.0, KILL_LATEST_S))
            check(moved >= KILL_EARLIEST_S,
                  "the SIGKILLed member's partitions moved %.1f s after the kill, before its session "
                  "timeout of %d ms could have expired (Kafka keeps a classic member whose connection "
                  "dropped until its session times out)" % (moved, SESSION_MS))
            if strategy == "cooperative-sticky":
                for m in live:
                    for seen in m.assignments_since(t_kill):
                        check(set(before[m.client_id]) <= set(seen),
                              "cooperative-sticky: %s held %r before the kill and was left with %r during the "
                              "rebalance; a survivor keeps its partitions" % (m.client_id, before[m.client_id], seen))

        leaver = live.pop(0)
        before = views(live)
        t_close = time.monotonic()
        leaver.close()
        t, shares = wait_balanced(live, partitions, "after %s closed (LeaveGroup)" % leaver.client_id,
                                  timeout_s=SESSION_MS / 1000.0 + 5)
        moved = t - t_close
        ctx.observe("after a close: shares", observed_shares(strategy, shares))
        ctx.say("%s: closed %s; its partitions moved after %.1f s: %s" % (strategy, leaver.client_id, moved, shares))
        check(moved <= CLOSE_LATEST_S,
              "after %s closed, its partitions moved only %.1f s later; a LeaveGroup should move them at once "
              "(want < %.1f s, the session timeout is %d ms)" % (leaver.client_id, moved, CLOSE_LATEST_S, SESSION_MS))
        leaver.wait_exit()
        if strategy == "cooperative-sticky":
            for m in live:
                for seen in m.assignments_since(t_close):
                    check(set(before[m.client_id]) <= set(seen),
                          "cooperative-sticky: %s held %r and was left with %r after %s closed"
                          % (m.client_id, before[m.client_id], seen, leaver.client_id))
        for m in live:
            m.close()
        for m in live:
            m.wait_exit()
    finally:
        finish_members(members)
    broker.check_alive()


def scenario_groups_range(ctx):
    """Three librdkafka members, range: 2 partitions each; SIGKILL moves after the session; close at once."""
    group_story(ctx, "range")


def scenario_groups_roundrobin(ctx):
    """Three librdkafka members, roundrobin: 2 partitions each; SIGKILL moves after the session; close at once."""
    group_story(ctx, "roundrobin")


def scenario_groups_cooperative_sticky(ctx):
    """Three librdkafka members, cooperative-sticky: as range, and survivors keep what they held."""
    group_story(ctx, "cooperative-sticky")


def scenario_groups_kafka_python(ctx):
    """kafka-python 2.0.2, a group of two (range): 3 partitions each; one closes, the other gets all 6."""
    group_story(ctx, "range", client="kafka-python", count=2, kill=False)


# ---------------------------------------------------------------------------
# Groups that consume: kafkajs, kcat -G.


def produce_numbered(broker, topic, partitions, per_partition):
    """per_partition records to each partition, key k-<p>-<i>, value v-<p>-<i>; returns {p: [(key, value)]}."""
    # Retried, one request in flight (order kept): Kafka may answer
    # NOT_LEADER_OR_FOLLOWER to the first produce to a topic just created.
    producer = kp_producer(broker, linger_ms=5, retries=5, max_in_flight_requests_per_connection=1)
    sent = {p: [] for p in range(partitions)}
    futures = []
    try:
        for i in range(per_partition):
            for p in range(partitions):
                key, value = "k-%d-%d" % (p, i), "v-%d-%d" % (p, i)
                futures.append((p, i, producer.send(topic, key=key.encode(), value=value.encode(), partition=p)))
                sent[p].append((key, value))
        for p, i, f in futures:
            md = f.get(timeout=20)
            check(md.partition == p, "record %d for partition %d landed in %d" % (i, p, md.partition))
        producer.flush(timeout=20)
    finally:
        producer.close(timeout=10)
    return sent


COORDINATOR_WAIT_S = 20


def committed_offsets(broker, group):
    """OffsetFetch of the group's offsets, {partition: offset}. Retried while the answer is
    retriable: after a restart Kafka answers NOT_COORDINATOR until it has loaded the group."""
    errors = kafka_python().errors
    admin = admin_client(broker)
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    try:
        while True:
            try:
                return {tp.partition: om.offset for tp, om in admin.list_consumer_group_offsets(group).items()}
            except errors.KafkaError as e:
                if not e.retriable or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
    finally:
        admin.close()


def check_consumed(what, got, sent):
    """got: {p: [(offset, key, value)]} in arrival order; sent: {p: [(key, value)]}: each record once, in order."""
    for p, records in sorted(sent.items()):
        mine = got.get(p, [])
        offsets = [o for o, _, _ in mine]
        check(offsets == list(range(len(records))),
              "%s partition %d: offsets %s..., want 0..%d once each in order"
              % (what, p, offsets[:12], len(records) - 1))
        for (o, k, v), (wk, wv) in zip(mine, records):
            check((k, v) == (wk, wv), "%s partition %d offset %d: (%r, %r), want (%r, %r)" % (what, p, o, k, v, wk, wv))
    extra = sorted(set(got) - set(sent))
    check(not extra, "%s: records from partitions %r that were never written" % (what, extra))


def scenario_groups_kafkajs(ctx):
    """kafkajs 2.2.4 consumes a 3-partition topic as a group, every record once; its commits are the ends."""
    module = os.path.join(HERE, "node_modules", "kafkajs", "package.json")
    check(os.path.exists(module), "kafkajs is not installed (bash tools/deps.sh test runs npm ci)")
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic, group, partitions, per = "kjs-events", "kjs-readers", 3, 200
    create_topics(broker, [(topic, partitions, {})])
    sent = produce_numbered(broker, topic, partitions, per)
    code, out, _ = ctx.run(["node", os.path.join(HERE, "kafkajs_group.js"), str(broker.port), topic, group,
                            str(partitions * per), str(SESSION_MS)], check_exit=False)
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise Failure("kafkajs_group.js printed no JSON result (%s)" % e)
    check(code == 0 and "failed" not in r, "kafkajs step %r failed: %s" % (r.get("failed"), json.dumps(r.get("error"))))
    join = r.get("join") or {}
    ctx.observe("kafkajs GROUP_JOIN (protocol, leader, assignment)",
                [join.get("groupProtocol"), join.get("isLeader"),
                 {t: sorted(ps) for t, ps in (join.get("memberAssignment") or {}).items()}])
    ctx.say("kafkajs joined as %s, protocol %s, assignment %s" % (join.get("memberId"), join.get("groupProtocol"),
                                                                 join.get("memberAssignment")))
    check(join.get("groupId") == group and join.get("isLeader") is True,
          "kafkajs GROUP_JOIN: %r, want group %s with this member its leader" % (join, group))
    check(sorted((join.get("memberAssignment") or {}).get(topic, [])) == list(range(partitions)),
          "kafkajs was assigned %r, want every partition of %s" % (join.get("memberAssignment"), topic))
    got = {}
    for m in r["messages"]:
        got.setdefault(m["partition"], []).append((int(m["offset"]), m["key"], m["value"]))
    check_consumed("kafkajs group consumer", got, sent)
    ctx.observe("records read by the group", {p: records_summary(got[p]) for p in sorted(got)})
    committed = committed_offsets(broker, group)
    ctx.observe("committed offsets after kafkajs disconnected", committed)
    check(committed == {p: per for p in range(partitions)},
          "after kafkajs disconnected, OffsetFetch for %s says %r, want %d (the end) for each partition"
          % (group, committed, per))
    broker.check_alive()


def scenario_groups_kcat(ctx):
    """kcat -G reads a 3-partition topic as a group to its end, every record once, and commits the ends."""
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic, group, partitions, per = "kcat-events", "kcat-readers", 3, 200
    create_topics(broker, [(topic, partitions, {})])
    sent = produce_numbered(broker, topic, partitions, per)
    _, out, _ = ctx.run(["kcat", "-b", broker.bootstrap, "-G", group, "-o", "beginning", "-e", "-J", "-q",
                         "-X", "session.timeout.ms=%d" % SESSION_MS, "-X", "heartbeat.interval.ms=500",
                         "-X", "auto.offset.reset=earliest", "-X", "enable.partition.eof=true", topic],
                        timeout_s=40)
    got = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise Failure("kcat -G printed a line that is not JSON (%s): %r" % (e, line[:200]))
        check(rec.get("topic") == topic, "kcat -G printed a record of %r" % rec.get("topic"))
        got.setdefault(rec["partition"], []).append((rec["offset"], rec.get("key"), rec.get("payload")))
    check_consumed("kcat -G", got, sent)
    ctx.observe("records read by kcat -G", {p: records_summary(got[p]) for p in sorted(got)})
    committed = eventually(lambda: committed_offsets(broker, group) or None, "OffsetFetch for %s" % group)
    ctx.observe("committed offsets after kcat -G ended", committed)
    check(committed == {p: per for p in range(partitions)},
          "after kcat -G ended, OffsetFetch for %s says %r, want %d (the end) for each partition"
          % (group, committed, per))
    broker.check_alive()


# ---------------------------------------------------------------------------
# Committed offsets survive a restart.


def librdkafka_consumer(broker, group, **extra):
    import logging
    from confluent_kafka import Consumer
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": "runnel-compat-resume",
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "socket.timeout.ms": 10000,
            "logger": logging.getLogger("confluent_kafka")}
    conf.update(extra)
    return Consumer(conf)


def consume_n(consumer, n, timeout_s, what, below=None):
    """The first n records poll() returns, [(partition, offset, key, value)]; with below
    ({partition: offset}), only records under those offsets count (the rest were fetched
    but, as far as the application goes, never processed)."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        check(time.monotonic() < deadline, "%s: %d of %d records within %.0f s" % (what, len(got), n, timeout_s))
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                continue
            raise Failure("%s: poll returned error %s" % (what, msg.error()))
        if below is not None and msg.offset() >= below.get(msg.partition(), 0):
            continue
        got.append((msg.partition(), msg.offset(), msg.key().decode(), msg.value().decode()))
    return got


def scenario_groups_offsets_restart(ctx):
    """Commit K of N records, stop and restart the broker: the group resumes at K and reads exactly N-K."""
    from confluent_kafka import TopicPartition
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic, group, partitions, per = "ledger", "ledger-readers", 3, 300
    # What the application gets through before it commits and stops, per partition.
    processed = {0: 40, 1: 151, 2: 299}
    k = sum(processed.values())
    create_topics(broker, [(topic, partitions, {})])
    sent = produce_numbered(broker, topic, partitions, per)
    total = partitions * per

    c = librdkafka_consumer(broker, group)
    try:
        c.subscribe([topic])
        first = consume_n(c, k, 30, "before the restart", below=processed)
        commit = dict(processed)
        answered = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in sorted(commit.items())],
                            asynchronous=False)
        errors = [(tp.partition, str(tp.error)) for tp in answered if tp.error]
        ctx.observe("OffsetCommit answered", [(tp.partition, tp.offset, str(tp.error) if tp.error else None)
                                              for tp in answered])
        check(not errors, "OffsetCommit answered errors: %r" % errors)
    finally:
        c.close()
    for p in range(partitions):
        mine = [o for q, o, _, _ in first if q == p]
        check(mine == list(range(processed[p])), "before the restart partition %d came as offsets %s..." % (p, mine[:10]))
    ctx.say("committed %r after reading %d of %d records" % (commit, k, total))
    check(committed_offsets(broker, group) == commit,
          "before the restart OffsetFetch says %r, want what was committed %r" % (committed_offsets(broker, group), commit))

    broker.stop()
    check(not broker.problems, "stopping the broker: %s" % broker.problems)
    broker.start()

    fetched = committed_offsets(broker, group)
    ctx.observe("OffsetFetch after the restart", fetched)
    check(fetched == commit, "after the restart OffsetFetch (kafka-python) says %r, want what was committed %r"
          % (fetched, commit))
    c = librdkafka_consumer(broker, group)
    try:
        asked = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        seen = {tp.partition: tp.offset for tp in asked if tp.offset >= 0}
        ctx.observe("librdkafka committed() after the restart", [(tp.partition, tp.offset) for tp in asked])
        check(seen == commit, "after the restart librdkafka's committed() says %r, want %r" % (seen, commit))
        c.subscribe([topic])
        rest = consume_n(c, total - k, 30, "after the restart")
        # Nothing more may come: anything extra is a record read twice.
        extra = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                extra.append((msg.partition(), msg.offset()))
        check(not extra, "after the restart the group read %d records more than the %d not committed: %r..."
              % (len(extra), total - k, extra[:5]))
    finally:
        c.close()
    for p in range(partitions):
        mine = [o for q, o, _, _ in rest if q == p]
        start = commit.get(p, 0)
        check(mine == list(range(start, per)),
              "after the restart partition %d was read from %s (%d records), want offsets %d..%d: it committed %d"
              % (p, mine[:5], len(mine), start, per - 1, start))
    ctx.observe("read after the restart, by partition",
                {p: records_summary((o, k, v) for q, o, k, v in rest if q == p) for p in range(partitions)})
    both = {}
    for p, o, key, value in first + rest:
        both.setdefault(p, []).append((o, key, value))
    check_consumed("the group across the restart", both, sent)
    broker.check_alive()


# ---------------------------------------------------------------------------
# DescribeGroups and ListGroups.


def scenario_groups_describe(ctx):
    """DescribeGroups/ListGroups show members, Stable, range and their assignments; Empty; deleted."""
    kafka_python()
    broker = ctx.broker(overrides=GROUP_OVERRIDES)
    topic, group, partitions = "described", "described-group", 6
    create_topics(broker, [(topic, partitions, {})])
    members = start_members(ctx, broker, "confluent", group, topic, "range", "describe", 2)
    admin = admin_client(broker)
    try:
        _, shares = wait_balanced(members, partitions, "2 members joining", timeout_s=30)

        desc = admin.describe_consumer_groups([group])
        ctx.note("kafka-python describe_consumer_groups", desc)
        check(len(desc) == 1, "describe_consumer_groups returned %d groups" % len(desc))
        d = desc[0]
        check(d.error_code == 0 and d.group == group, "DescribeGroups: error %r for group %r" % (d.error_code, d.group))
        check(d.state == "Stable", "DescribeGroups state %r, want Stable" % d.state)
        check(d.protocol_type == "consumer", "DescribeGroups protocol_type %r, want consumer" % d.protocol_type)
        check(d.protocol == "range", "DescribeGroups protocol %r, want range (what both members asked for)" % d.protocol)
        check(len(d.members) == 2, "DescribeGroups lists %d members, want 2" % len(d.members))
        described = {}
        for m in d.members:
            check(m.member_id and m.member_id.startswith(m.client_id + "-"),
                  "member id %r: want the client id %r and a suffix, as Kafka makes them" % (m.member_id, m.client_id))
            check(m.client_host.endswith("127.0.0.1"), "member %s client_host %r" % (m.client_id, m.client_host))
            check(m.member_metadata is not None and list(m.member_metadata.subscription) == [topic],
                  "member %s metadata %r, want a subscription to %s" % (m.client_id, m.member_metadata, topic))
            check(m.member_assignment is not None, "member %s has no assignment in DescribeGroups" % m.client_id)
            parts = []
            for t, ps in m.member_assignment.assignment:
                check(t == topic, "member %s assigned partitions of %r" % (m.client_id, t))
                parts += ps
            described[m.client_id] = sorted(parts)
        check(len(set(m.member_id for m in d.members)) == 2, "member ids not distinct: %r" % [m.member_id for m in d.members])
        check(described == shares, "DescribeGroups assignments %r, the members report %r" % (described, shares))
        ctx.observe("DescribeGroups of the stable group",
                    {"error": d.error_code, "state": d.state, "protocol_type": d.protocol_type,
                     "protocol": d.protocol, "members": len(d.members),
                     "assignments": sorted(described.values()),
                     "subscriptions": sorted(list(m.member_metadata.subscription) for m in d.members)})

        listed = admin.list_consumer_groups()
        ctx.note("kafka-python list_consumer_groups", listed)
        ctx.observe("ListGroups (kafka-python)", sorted(tuple(x) for x in listed))
        check((group, "consumer") in [tuple(g) for g in listed],
              "ListGroups %r lacks (%r, 'consumer')" % (listed, group))

        # librdkafka's view (ListGroups then DescribeGroups, rd_kafka_list_groups).
        from confluent_kafka.admin import AdminClient
        import logging
        cadmin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000,
                              "logger": logging.getLogger("confluent_kafka")})
        groups = cadmin.list_groups(group, timeout=15)
        check(len(groups) == 1, "librdkafka list_groups(%s) returned %d groups" % (group, len(groups)))
        g = groups[0]
        ctx.note("librdkafka list_groups", "%s state=%s protocol_type=%s protocol=%s members=%r"
                 % (g.id, g.state, g.protocol_type, g.protocol, [(m.id, m.client_id) for m in g.members]))
        ctx.observe("librdkafka list_groups(group)", [g.id, g.state, g.protocol_type, g.protocol, len(g.members)])
        check((g.id, g.state, g.protocol_type, g.protocol) == (group, "Stable", "consumer", "range"),
              "librdkafka list_groups: %r, want (%s, Stable, consumer, range)"
              % ((g.id, g.state, g.protocol_type, g.protocol), group))
        check(sorted(m.id for m in g.members) == sorted(m.member_id for m in d.members),
              "librdkafka sees members %r, kafka-python %r" % ([m.id for m in g.members], [m.member_id for m in d.members]))
        all_groups = cadmin.list_groups(timeout=15)
        check(group in [x.id for x in all_groups], "librdkafka list_groups() lacks %s: %r" % (group, [x.id for x in all_groups]))
        del cadmin

        for m in members:
            m.close()
        for m in members:
            m.wait_exit()

        def empty():
            x = admin.describe_consumer_groups([group])[0]
            return x if x.state == "Empty" else None
        d = eventually(empty, "DescribeGroups says Empty once both members left")
        check(list(d.members) == [], "an Empty group lists members %r" % (d.members,))
        ctx.note("describe after both closed", d)
        ctx.observe("DescribeGroups once both left", [d.error_code, d.state, d.protocol_type, d.protocol,
                                                      len(d.members)])

        result = admin.delete_consumer_groups([group])
        ctx.note("delete_consumer_groups", result)
        ctx.observe("DeleteGroups", [(g_, getattr(e, "errno", e)) for g_, e in result])
        check([(g_, getattr(e, "errno", e)) for g_, e in result] == [(group, 0)],
              "DeleteGroups answered %r" % (result,))
        listed = admin.list_consumer_groups()
        check(group not in [g_ for g_, _ in listed], "ListGroups after DeleteGroups still has %s: %r" % (group, listed))
        d = admin.describe_consumer_groups([group])[0]
        ctx.note("describe after delete", d)
        ctx.observe("DescribeGroups after DeleteGroups", [d.error_code, d.state, d.protocol_type, d.protocol,
                                                          len(d.members)])
        ctx.observe("ListGroups after DeleteGroups", sorted(tuple(x) for x in listed))
        check(d.state == "Dead" and list(d.members) == [],
              "DescribeGroups of a deleted group: state %r members %r, want Dead and none" % (d.state, d.members))
    finally:
        admin.close()
        finish_members(members)
    broker.check_alive()


SCENARIOS = [
    ("groups_range", scenario_groups_range),
    ("groups_roundrobin", scenario_groups_roundrobin),
    ("groups_cooperative_sticky", scenario_groups_cooperative_sticky),
    ("groups_kafka_python", scenario_groups_kafka_python),
    ("groups_kafkajs", scenario_groups_kafkajs),
    ("groups_kcat", scenario_groups_kcat),
    ("groups_offsets_restart", scenario_groups_offsets_restart),
    ("groups_describe", scenario_groups_describe),
]
