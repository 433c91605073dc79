"""compat-tests/ck_driver.py - librdkafka 2.16 (the PyPI confluent-kafka wheel) in one program.

Debian's confluent-kafka 1.7.0 speaks through librdkafka 2.0.2; the wheel of
confluent-kafka 2.16 (compat-tests/requirements.txt, in build/compat-venv)
bundles a current librdkafka, 2.16.0, with KIP-848 consumer groups, the
admin calls of the last years and ApiVersions negotiation as it is today.
Run by ck_clients.py with the venv's interpreter, never imported by the
suite:

    build/compat-venv/bin/python compat-tests/ck_driver.py STEP BOOTSTRAP [ARGS...]

Each step prints what the client saw as JSON lines in py_driver.py's shapes
(those of the Go program), so go_clients.py's and py_clients.py's checks
judge them; the last line is {"event": "done"}, or {"event": "error"} and
exit status 1. The steps of py_driver.py (metadata, admin, produce,
group-share, group-resume, idempotent, txn-produce, txn-consume) and:

    offsets-time TOPIC N                   N records per partition of a 2-partition topic at known
                                           CreateTime timestamps (increasing on 0, shuffled on 1);
                                           offsets_for_times and AdminClient.list_offsets answers
    group-admin TOPIC GROUP PARTITIONS     list, describe, list offsets of, alter offsets of and
                                           delete a group whose members have left
    txn-offsets IN OUT GROUP PLAN PER_TXN  consume IN, produce to OUT and send the consumer's
                                           offsets in one transaction per letter of PLAN; the
                                           group's committed offset after each
    kip848 TOPIC GROUP PARTITIONS N        two members of a group.protocol=consumer group (KIP-848)
                                           share TOPIC, read N records between them, commit

CK_DRIVER_DEBUG=protocol,cgrp,... turns on librdkafka's debug contexts (stderr).
"""

import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
from py_driver import (Consumed, StepFailed, b64, check_views, deadline_left, emit,  # noqa: E402
                       group_records, make_records, record_fields, resume_member, txn_records)

REQUEST_TIMEOUT_S = 15
CLIENT_ID = "runnel-compat-ck"

# librdkafka's debug lines about its ApiVersions probe (rdkafka_broker.c):
# "Sent ApiVersionRequest (v3, ...)", "Received ApiVersionResponse (v3, ...)",
# then "  ApiKey Produce (0) Versions 0..11" per key of the answer.
SENT_RE = re.compile(r"Sent ApiVersionRequest \(v(\d+),")
RECEIVED_RE = re.compile(r"Received ApiVersionResponse \(v(\d+),")
API_KEY_RE = re.compile(r"ApiKey .* \((\d+)\) Versions (\d+)\.\.(\d+)")


class ProbeLog:
    """A logger for librdkafka (its `logger` setting) that keeps what its ApiVersions probe said."""

    def __init__(self):
        self.sent, self.received, self.versions = [], [], {}

    def log(self, level, fmt, *args):
        line = fmt % args
        for regex, into in ((SENT_RE, self.sent), (RECEIVED_RE, self.received)):
            m = regex.search(line)
            if m:
                into.append(int(m.group(1)))
        m = API_KEY_RE.search(line)
        if m:
            self.versions[int(m.group(1))] = [int(m.group(2)), int(m.group(3))]


def kafka_code(e):
    """The Kafka error code of a KafkaException (librdkafka passes broker codes through)."""
    err = e.args[0] if e.args else None
    return err.code() if hasattr(err, "code") else None


def node(n):
    return None if n is None else n.id


class Librdkafka:
    def __init__(self, bootstrap):
        import confluent_kafka
        import confluent_kafka.admin
        self.ck = confluent_kafka
        self.ca = confluent_kafka.admin
        self.bootstrap = bootstrap
        self.debug = os.environ.get("CK_DRIVER_DEBUG")

    def config(self, **extra):
        c = {"bootstrap.servers": self.bootstrap, "client.id": CLIENT_ID}
        if self.debug:
            c["debug"] = self.debug
        c.update(extra)
        return c

    def admin(self, **extra):
        return self.ca.AdminClient(self.config(**extra))

    def producer(self, **extra):
        settings = {"acks": "all", "enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
                    "linger.ms": 5}
        settings.update(extra)
        return self.ck.Producer(self.config(**settings))

    def consumer(self, group, **extra):
        settings = {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 200}
        settings.update(extra)
        return self.ck.Consumer(self.config(**settings))

    def result(self, future):
        return future.result(timeout=REQUEST_TIMEOUT_S)

    def outcome(self, future):
        """(None, code) when the call succeeded, (message, Kafka error code) when it failed."""
        try:
            self.result(future)
            return None, 0
        except self.ck.KafkaException as e:
            return str(e), kafka_code(e)

    # -- metadata ---------------------------------------------------------

    def metadata(self, topic):
        probe = ProbeLog()
        debug = "feature,protocol" if not self.debug else self.debug + ",feature,protocol"
        admin = self.admin(debug=debug, logger=probe)
        self.result(admin.create_topics([self.ca.NewTopic(topic, 3, 1)],
                                        request_timeout=REQUEST_TIMEOUT_S)[topic])
        self.wait_partitions(admin, topic, 3)
        admin.poll(0)  # serves the log lines queued so far
        emit("versions", versions={str(k): v for k, v in sorted(probe.versions.items())},
             requests=probe.sent, responses=probe.received)
        cluster = self.result(admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S))
        brokers = sorted(({"id": n.id, "host": n.host, "port": n.port} for n in cluster.nodes),
                         key=lambda b: b["id"])
        md = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        emit("metadata", brokers=brokers, controller=node(cluster.controller), cluster=cluster.cluster_id,
             topics=sorted(md.topics))
        # The same from Metadata itself (list_topics), as producers and consumers see it.
        emit("metadata-listing", brokers=sorted(({"id": b.id, "host": b.host, "port": b.port}
                                                 for b in md.brokers.values()), key=lambda b: b["id"]),
             controller=md.controller_id, cluster=md.cluster_id)
        self.emit_listed(md, "topic-listing", topic)
        self.emit_topic(admin, "topic", topic)

    def emit_listed(self, md, step, topic):
        t = md.topics.get(topic)
        if t is None:
            emit(step, topic=topic, listed=False, error=None, partitions=None)
            return
        parts = [{"partition": p.id, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs),
                  "error": p.error.code() if p.error else None}
                 for p in sorted(t.partitions.values(), key=lambda p: p.id)]
        emit(step, topic=topic, listed=True, error=t.error.code() if t.error else None, partitions=parts)

    def emit_topic(self, admin, step, topic):
        """DescribeTopics (Metadata by topic name, with authorized operations)."""
        futures = admin.describe_topics(self.ck.TopicCollection([topic]), request_timeout=REQUEST_TIMEOUT_S)
        try:
            t = self.result(futures[topic])
        except self.ck.KafkaException as e:
            emit(step, topic=topic, listed=False, error=str(e), partitions=None)
            return
        parts = [{"partition": p.id, "leader": node(p.leader), "replicas": [node(r) for r in p.replicas],
                  "isr": [node(r) for r in p.isr], "error": None}
                 for p in sorted(t.partitions, key=lambda p: p.id)]
        emit(step, topic=topic, listed=True, error=None, partitions=parts, internal=t.is_internal,
             topic_id=str(t.topic_id))

    def wait_partitions(self, admin, topic, count):
        """Until Metadata shows count partitions with leaders (Kafka applies a change just after answering)."""
        for _ in range(50):
            t = admin.list_topics(topic, timeout=REQUEST_TIMEOUT_S).topics.get(topic)
            if t and not t.error and len(t.partitions) == count and all(p.leader >= 0 for p in t.partitions.values()):
                return
            time.sleep(0.1)

    # -- admin ------------------------------------------------------------

    def describe(self, admin, step, topic, until=None):
        """DescribeConfigs; with until=(key, value), again for at most 5 s until key has value."""
        resource = self.ca.ConfigResource(self.ca.ResourceType.TOPIC, topic)
        for _ in range(50):
            entries = self.result(admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource])
            configs = {k: {"value": e.value, "source": int(e.source)} for k, e in entries.items()}
            if until is None or configs.get(until[0], {}).get("value") == until[1]:
                break
            time.sleep(0.1)
        emit(step, error=None, configs=configs)

    def admin_story(self, topic):
        ca = self.ca
        admin = self.admin()
        timeout = dict(request_timeout=REQUEST_TIMEOUT_S, operation_timeout=REQUEST_TIMEOUT_S)
        error, _ = self.outcome(admin.create_topics([ca.NewTopic(topic, 3, 1, config={
            "retention.ms": "3600000", "cleanup.policy": "compact"})], **timeout)[topic])
        emit("create", error=error)
        self.wait_partitions(admin, topic, 3)
        error, code = self.outcome(admin.create_topics([ca.NewTopic(topic, 3, 1)], **timeout)[topic])
        emit("create-again", error=error, kafka_error=code)
        self.describe(admin, "describe", topic)
        resource = ca.ConfigResource(ca.ResourceType.TOPIC, topic, incremental_configs=[
            ca.ConfigEntry("retention.ms", "7200000", incremental_operation=ca.AlterConfigOpType.SET),
            ca.ConfigEntry("cleanup.policy", None, incremental_operation=ca.AlterConfigOpType.DELETE)])
        error, _ = self.outcome(admin.incremental_alter_configs([resource],
                                                                request_timeout=REQUEST_TIMEOUT_S)[resource])
        emit("alter-incremental", error=error)
        self.describe(admin, "describe-after-alter", topic, until=("retention.ms", "7200000"))
        # The legacy AlterConfigs replaces the whole set with what it names.
        resource = ca.ConfigResource(ca.ResourceType.TOPIC, topic, set_config={"segment.bytes": "1048576"})
        error, _ = self.outcome(admin.alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource])
        emit("alter-state", error=error, keeps_modified=False)
        self.describe(admin, "describe-after-state", topic, until=("segment.bytes", "1048576"))
        error, _ = self.outcome(admin.create_partitions([ca.NewPartitions(topic, 5)], **timeout)[topic])
        emit("create-partitions", error=error)
        error, code = self.outcome(admin.create_partitions([ca.NewPartitions(topic, 2)], **timeout)[topic])
        emit("create-partitions-fewer", error=error, kafka_error=code)
        self.wait_partitions(admin, topic, 5)
        self.emit_topic(admin, "after-partitions", topic)
        error, _ = self.outcome(admin.delete_topics([topic], **timeout)[topic])
        emit("delete", error=error)
        for i in range(50):
            if topic not in admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics:
                emit("gone", after_polls=i)
                return
            time.sleep(0.1)
        emit("gone", error="still listed after 5 s")

    # -- produce and read back ---------------------------------------------

    def send(self, producer, topic, recs):
        """Produces recs; each gets the offset its delivery report names."""
        failures = []

        def delivered(r):
            def on_delivery(err, msg):
                if err is not None:
                    failures.append("record for partition %d: %s" % (r["p"], err))
                elif msg.partition() != r["p"]:
                    failures.append("record for partition %d acknowledged on %d" % (r["p"], msg.partition()))
                else:
                    r["o"] = msg.offset()
            return on_delivery

        for r in recs:
            kwargs = {"partition": r["p"], "on_delivery": delivered(r)}
            if r.get("key") is not None:
                kwargs["key"] = r["key"]
            if r.get("h"):
                kwargs["headers"] = list(r["h"])
            if r.get("ts", -1) >= 0:
                kwargs["timestamp"] = r["ts"]
            producer.produce(topic, value=r.get("value"), **kwargs)
            producer.poll(0)
        left = producer.flush(30)
        if left or failures:
            raise StepFailed("%d records not delivered; %s" % (left, "; ".join(failures[:3])))

    def produce(self, topic, partitions, per_codec, codecs):
        base_ms = int(time.time() * 1000) - 3600 * 1000
        for codec in codecs:
            recs = make_records(codec, per_codec, partitions, base_ms)
            self.send(self.producer(**{"compression.codec": codec}), topic, recs)
            for r in recs:
                emit("sent", **record_fields(r))
        self.read_back(topic, partitions)

    def record(self, msg):
        return {"p": msg.partition(), "o": msg.offset(), "key": msg.key(), "value": msg.value(),
                "h": list(msg.headers() or []), "ts": msg.timestamp()[1]}

    def read_back(self, topic, partitions, isolation="read_uncommitted", counts=None):
        """Assigns every partition from the beginning; reads to the end (or counts)."""
        ck = self.ck
        consumer = self.consumer("ck-reader", **{"isolation.level": isolation})
        try:
            ends = {p: consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S)[1]
                    for p in range(partitions)}
            consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
            got = {p: 0 for p in range(partitions)}
            next_offset = {p: 0 for p in range(partitions)}
            deadline = time.monotonic() + 30

            def more():
                if counts is not None:
                    return any(got[p] < counts[p] for p in range(partitions))
                return any(next_offset[p] < ends[p] for p in range(partitions))

            while more():
                deadline_left(deadline, "read %r of %s, want %r" % (got, topic, counts or ends))
                for msg in consumer.consume(500, 0.5):
                    if msg.error():
                        raise StepFailed("consume: %s" % msg.error())
                    p = msg.partition()
                    next_offset[p] = msg.offset() + 1
                    if counts is None or got[p] < counts[p]:
                        got[p] += 1
                        emit("got", **record_fields(self.record(msg)))
            for p in range(partitions):
                emit("end", p=p, offset=ends[p])
        finally:
            consumer.close()

    # -- offsets by time ------------------------------------------------------

    def offsets_time(self, topic, n):
        """Partition 0: timestamps base+10*i; partition 1 the same shuffled (a fixed seed). Asked
        again after DeleteRecords moves the log starts: 0's to n // 5, 1's past its record with
        the largest timestamp."""
        ck = self.ck
        base_ms = (int(time.time() * 1000) - 7200 * 1000) // 1000 * 1000
        stamps = {0: [base_ms + 10 * i for i in range(n)]}
        stamps[1] = list(stamps[0])
        random.Random(7).shuffle(stamps[1])
        recs = [{"p": p, "o": -1, "key": b"t-%d-%d" % (p, i), "value": b"v" * (i % 50), "h": [],
                 "ts": stamps[p][i], "codec": "lz4"} for p in (0, 1) for i in range(n)]
        self.send(self.producer(**{"compression.codec": "lz4", "linger.ms": 50}), topic, recs)
        for r in recs:
            emit("sent", p=r["p"], o=r["o"], ts=r["ts"])
        targets = [base_ms - 5000, base_ms, base_ms + 1, base_ms + 10 * (n - 1), base_ms + 10 * n,
                   base_ms + 10 * (n // 5) - 5, base_ms + 10 * (n // 2) + 3]
        targets += [base_ms + random.Random(i).randrange(10 * n) for i in range(6)]
        admin = self.admin()
        self.ask_offsets(admin, "before-delete", topic, (0, 1), targets)
        # On 1, the record with the largest timestamp goes too (its segment stays).
        cut = {0: n // 5, 1: stamps[1].index(max(stamps[1])) + 1}
        for p in (0, 1):
            tp = ck.TopicPartition(topic, p, cut[p])
            done = self.result(admin.delete_records([tp], request_timeout=REQUEST_TIMEOUT_S)[tp])
            emit("deleted", p=p, before=cut[p], low=done.low_watermark)
        self.ask_offsets(admin, "after-delete", topic, (0, 1), targets)

    def ask_offsets(self, admin, phase, topic, partitions, targets):
        """offsets_for_times, the watermarks, and list_offsets of every kind, for each partition."""
        ck, ca = self.ck, self.ca
        consumer = self.consumer("ck-times")
        try:
            for p in partitions:
                for target in targets:
                    got = consumer.offsets_for_times([ck.TopicPartition(topic, p, target)],
                                                     timeout=REQUEST_TIMEOUT_S)[0]
                    emit("offset-for-time", phase=phase, api="offsets_for_times", p=p, spec="timestamp",
                         target=target, offset=got.offset, error=str(got.error) if got.error else None)
                low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S)
                emit("watermarks", phase=phase, p=p, low=low, high=high)
        finally:
            consumer.close()
        specs = [("earliest", None, ca.OffsetSpec.earliest()), ("latest", None, ca.OffsetSpec.latest()),
                 ("max_timestamp", None, ca.OffsetSpec.max_timestamp())]
        specs += [("timestamp", t, ca.OffsetSpec.for_timestamp(t)) for t in targets]
        for p in partitions:
            for spec, target, offset_spec in specs:
                tp = ck.TopicPartition(topic, p)
                info = self.result(admin.list_offsets({tp: offset_spec}, request_timeout=REQUEST_TIMEOUT_S)[tp])
                emit("offset-for-time", phase=phase, api="list_offsets", p=p, spec=spec, target=target,
                     offset=info.offset, timestamp=info.timestamp, error=None)

    # -- groups ---------------------------------------------------------------

    def member(self, topic, group, classic=True, **extra):
        # A KIP-848 member takes its session and heartbeat from the broker.
        settings = {"session.timeout.ms": 10000, "heartbeat.interval.ms": 500} if classic else {}
        settings.update(extra)
        c = self.consumer(group, **settings)
        c.subscribe([topic])
        return c

    def poll_into(self, name, c, consumed):
        for msg in c.consume(500, 0.1):
            if msg.error():
                emit("fetch-error", member=name, error=str(msg.error()))
                continue
            consumed.add(name, self.record(msg))

    def commit(self, name, c, consumed, topic):
        ck = self.ck
        offsets = consumed.next_offsets.get(name, {})
        try:
            if offsets:
                c.commit(offsets=[ck.TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
            emit("committed", member=name, offsets={str(p): o for p, o in offsets.items()}, error=None)
        except ck.KafkaException as e:
            emit("committed", member=name, offsets={}, error=str(e))

    def share(self, topic, group, partitions, n, members):
        """members share topic's partitions; they read n records written once they do, and commit.
        librdkafka's members heartbeat from threads of their own, so one thread polls both."""
        deadline = time.monotonic() + 40
        consumed = Consumed(n)
        try:
            while True:
                for name, c in members.items():
                    self.poll_into(name, c, consumed)
                views = {name: sorted(tp.partition for tp in c.assignment()) for name, c in members.items()}
                if check_views(views, partitions):
                    break
                deadline_left(deadline, "group %s never shared: %r" % (group, views))
            emit("stable", members=views)
            self.send(self.producer(), topic, group_records("share", n, partitions))
            while not consumed.done:
                deadline_left(deadline, "read %d of %d records" % (consumed.total, n))
                for name, c in members.items():
                    self.poll_into(name, c, consumed)
            for name, c in members.items():
                self.commit(name, c, consumed, topic)
        finally:
            for c in members.values():
                c.close()

    def group_share(self, topic, group, partitions, n):
        self.share(topic, group, partitions, n, {m: self.member(topic, group) for m in ("a", "b")})

    def group_resume(self, topic, group, partitions, n):
        self.send(self.producer(), topic, group_records("resume", n, partitions))
        resume_member(self, topic, group, n)

    def group_offsets(self, admin, group):
        request = [self.ck.ConsumerGroupTopicPartitions(group)]
        res = self.result(admin.list_consumer_group_offsets(request, request_timeout=REQUEST_TIMEOUT_S)[group])
        return {"%s:%d" % (tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}

    def emit_group(self, admin, step, group):
        """DescribeGroups (or ConsumerGroupDescribe) of one group."""
        try:
            d = self.result(admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group])
        except self.ck.KafkaException as e:
            emit(step, group=group, error=str(e), kafka_error=kafka_code(e))
            return
        emit(step, group=group, error=None, state=d.state.name, type=d.type.name, simple=d.is_simple_consumer_group,
             assignor=d.partition_assignor, coordinator=node(d.coordinator),
             members=sorted(sorted("%s:%d" % (tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
                            for m in d.members))

    def group_admin(self, topic, group, partitions):
        ck = self.ck
        admin = self.admin()
        listed = self.result(admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S))
        emit("groups-listed", groups={g.group_id: {"state": g.state.name, "type": g.type.name,
                                                   "simple": g.is_simple_consumer_group} for g in listed.valid},
             errors=[str(e) for e in listed.errors])
        self.emit_group(admin, "described", group)
        emit("group-offsets", step="committed", offsets=self.group_offsets(admin, group))
        consumer = self.consumer("ck-ends")
        try:
            for p in range(partitions):
                high = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S)[1]
                emit("end", p=p, offset=high)
        finally:
            consumer.close()
        # An inactive group's offsets can be set by anyone (kafka-consumer-groups --reset-offsets does it).
        alter = [ck.ConsumerGroupTopicPartitions(group, [ck.TopicPartition(topic, 0, 1),
                                                         ck.TopicPartition(topic, partitions - 1, 2)])]
        res = self.result(admin.alter_consumer_group_offsets(alter, request_timeout=REQUEST_TIMEOUT_S)[group])
        emit("group-offsets", step="altered", offsets={"%s:%d" % (tp.topic, tp.partition): tp.offset
                                                       for tp in res.topic_partitions},
             errors=[str(tp.error) for tp in res.topic_partitions if tp.error])
        emit("group-offsets", step="after-alter", offsets=self.group_offsets(admin, group))
        error, _ = self.outcome(admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group])
        emit("group-deleted", error=error)
        listed = self.result(admin.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S))
        emit("groups-after-delete", groups=sorted(g.group_id for g in listed.valid))
        self.emit_group(admin, "described-after-delete", group)

    def kip848(self, topic, group, partitions, n):
        """KIP-848: the broker assigns (ConsumerGroupHeartbeat); no session or assignor settings allowed."""
        self.share(topic, group, partitions, n,
                   {m: self.member(topic, group, classic=False, **{"group.protocol": "consumer"}) for m in ("a", "b")})
        admin = self.admin()
        self.emit_group(admin, "described", group)
        emit("group-offsets", step="committed", offsets=self.group_offsets(admin, group))

    # -- idempotence and transactions -------------------------------------------

    def idempotent(self, topic, partitions, n):
        recs = group_records("idem", n * partitions, partitions)
        self.send(self.producer(**{"enable.idempotence": True, "max.in.flight.requests.per.connection": 5}),
                  topic, recs)
        for r in recs:
            emit("sent", **record_fields(r))
        self.read_back(topic, partitions)

    def transactional(self, txn_id):
        p = self.producer(**{"transactional.id": txn_id, "enable.idempotence": True,
                             "max.in.flight.requests.per.connection": 5})
        p.init_transactions(REQUEST_TIMEOUT_S)
        return p

    def txn_produce(self, topic, partitions, txn_id, plan, per_txn):
        producer = self.transactional(txn_id)
        for t, letter in enumerate(plan):
            producer.begin_transaction()
            recs = txn_records(t, letter, per_txn, partitions)
            self.send(producer, topic, recs)
            if letter == "c":
                producer.commit_transaction(REQUEST_TIMEOUT_S)
            else:
                producer.abort_transaction(REQUEST_TIMEOUT_S)
            for r in recs:
                emit("sent", p=r["p"], o=r["o"], value=b64(r["value"]), commit=letter == "c")

    def txn_consume(self, topic, isolation, counts):
        self.read_back(topic, len(counts), isolation=isolation, counts=counts)

    def txn_offsets(self, source, sink, group, plan, per_txn):
        """Consume-transform-produce: each transaction writes per_txn transformed records of source
        (one partition) to sink and commits the consumer's position with them (KIP-98's
        send_offsets_to_transaction); an aborted one rewinds to the last committed offset."""
        ck = self.ck
        self.send(self.producer(), source, [{"p": 0, "o": -1, "key": None, "value": b"in-%d" % i, "h": [], "ts": -1}
                                            for i in range(len(plan) * per_txn)])
        producer = self.transactional("ck-eos-" + group)
        consumer = self.member(source, group, **{"isolation.level": "read_committed"})
        deadline = time.monotonic() + 40
        committed = -1001  # OFFSET_INVALID: nothing committed yet
        try:
            for t, letter in enumerate(plan):
                batch = []
                while len(batch) < per_txn:
                    deadline_left(deadline, "transaction %d read %d of %d records" % (t, len(batch), per_txn))
                    for msg in consumer.consume(per_txn - len(batch), 0.2):
                        if msg.error():
                            raise StepFailed("consume: %s" % msg.error())
                        batch.append(msg)
                producer.begin_transaction()
                out = [{"p": 0, "o": -1, "key": None, "value": b"out-" + m.value(), "h": [], "ts": -1} for m in batch]
                self.send(producer, sink, out)
                position = batch[-1].offset() + 1
                producer.send_offsets_to_transaction([ck.TopicPartition(source, 0, position)],
                                                     consumer.consumer_group_metadata(), REQUEST_TIMEOUT_S)
                if letter == "c":
                    producer.commit_transaction(REQUEST_TIMEOUT_S)
                    committed = position
                else:
                    producer.abort_transaction(REQUEST_TIMEOUT_S)
                    # Read the aborted records again: back to the last committed offset.
                    consumer.seek(ck.TopicPartition(source, 0, committed if committed >= 0 else ck.OFFSET_BEGINNING))
                for r in out:
                    emit("sent", p=0, o=r["o"], value=b64(r["value"]), commit=letter == "c")
                seen, polls = None, 0
                while polls < 50 and seen != committed:
                    polls += 1
                    seen = consumer.committed([ck.TopicPartition(source, 0)], timeout=REQUEST_TIMEOUT_S)[0].offset
                    if seen != committed:
                        time.sleep(0.1)
                emit("offsets", txn=t, commit=letter == "c", sent=position, committed=seen, want=committed,
                     polls=polls)
        finally:
            consumer.close()


STEPS = {
    "metadata": (lambda c, a: c.metadata(a[0])),
    "admin": (lambda c, a: c.admin_story(a[0])),
    "produce": (lambda c, a: c.produce(a[0], int(a[1]), int(a[2]), a[3].split(","))),
    "offsets-time": (lambda c, a: c.offsets_time(a[0], int(a[1]))),
    "group-share": (lambda c, a: c.group_share(a[0], a[1], int(a[2]), int(a[3]))),
    "group-resume": (lambda c, a: c.group_resume(a[0], a[1], int(a[2]), int(a[3]))),
    "group-admin": (lambda c, a: c.group_admin(a[0], a[1], int(a[2]))),
    "kip848": (lambda c, a: c.kip848(a[0], a[1], int(a[2]), int(a[3]))),
    "idempotent": (lambda c, a: c.idempotent(a[0], int(a[1]), int(a[2]))),
    "txn-produce": (lambda c, a: c.txn_produce(a[0], int(a[1]), a[2], a[3], int(a[4]))),
    "txn-consume": (lambda c, a: c.txn_consume(a[0], a[1], [int(n) for n in a[2].split(",")])),
    "txn-offsets": (lambda c, a: c.txn_offsets(a[0], a[1], a[2], a[3], int(a[4]))),
}


def main(argv):
    if len(argv) < 3 or argv[1] not in STEPS:
        print("usage: ck_driver.py {%s} BOOTSTRAP [ARGS...]" % "|".join(STEPS), file=sys.stderr)
        return 2
    step, bootstrap, args = argv[1], argv[2], argv[3:]
    try:
        STEPS[step](Librdkafka(bootstrap), args)
    except Exception as e:  # noqa: BLE001 - every failure is one error event
        import traceback
        traceback.print_exc()
        emit("error", what="librdkafka 2.16 %s" % step, error="%s: %s" % (type(e).__name__, e))
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
