"""compat-tests/py_driver.py - the current PyPI clients, kafka-python 3 and aiokafka, in one program.

Run by py_clients.py with the interpreter of build/compat-venv (tools/deps.sh
installs the clients there from requirements.txt), never imported by the
suite, which runs under Debian's /usr/bin/python3 and its kafka-python 2.0.2:

    build/compat-venv/bin/python compat-tests/py_driver.py CLIENT STEP BOOTSTRAP [ARGS...]

CLIENT is kp3 (kafka-python 3.0.x) or aiokafka. Each step prints what the
client saw as JSON lines, {"event": ..., ...}, in the shapes the Go
program prints (go/main.go), so the same checks judge them; the last line
is {"event": "done"}, or {"event": "error"} and exit status 1.

Steps:
    metadata TOPIC                          the client's version probe, Metadata for TOPIC
    admin TOPIC                             create with configs, describe, alter, add partitions, delete
    produce TOPIC PARTITIONS N CODECS       N records per codec (keys, nulls, headers, timestamps),
                                            one request in flight; read back by assign/seek
    group-share TOPIC GROUP PARTITIONS N    two members share TOPIC, read N records between them, commit
    group-resume TOPIC GROUP PARTITIONS N   N more records; a new member reads them from the commits
    idempotent TOPIC PARTITIONS N           an idempotent producer writes N records per partition
    txn-produce TOPIC PARTITIONS TXN_ID PLAN PER_TXN   one transaction per letter of PLAN (c commits,
                                            a aborts), PER_TXN records each over the partitions
    txn-consume TOPIC ISOLATION COUNTS      read COUNTS (comma-separated, per partition) records

PY_DRIVER_LOG=DEBUG (or INFO) writes the client's own log to stderr.
"""

import asyncio
import base64
import json
import logging
import os
import sys
import threading
import time

STEP_TIMEOUT_S = 50  # the suite kills this program later than that
REQUEST_TIMEOUT_MS = 15000
COMMIT_TRIES = 10
CLIENT_ID = "runnel-compat-py"

_out = threading.Lock()


def emit(event, **fields):
    fields["event"] = event
    line = json.dumps(fields, default=str)
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class StepFailed(Exception):
    pass


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def error_code(e):
    """The Kafka error code of a client exception, or None."""
    return getattr(e, "errno", None)


def make_records(codec, n, partitions, base_ms):
    """The records of one codec, as go/main.go makeRecords makes them."""
    recs = []
    for i in range(n):
        key = None if i % 7 == 3 else b"" if i % 7 == 5 else ("%s-key-%d" % (codec, i)).encode()
        if i % 11 == 4:
            value = None
        elif i % 13 == 6:
            value = b""
        else:
            value = (("%s value %d; " % (codec, i)) * (1 + i % 40)).encode()
        if key is None and value is None:
            key = b""  # both clients refuse a record with neither ("Need at least one: key or value")
        headers = [[], [("trace", ("t-%d" % i).encode())], [("dup", b"first"), ("dup", b"")]][i % 3]
        recs.append({"p": i % partitions, "o": -1, "key": key, "value": value, "h": headers,
                     "ts": base_ms + i * 3, "codec": codec})
    return recs


def group_records(run, n, partitions):
    now = int(time.time() * 1000)
    return [{"p": i % partitions, "o": -1, "key": b"k%d" % i, "value": ("%s-%d" % (run, i)).encode(),
             "h": [], "ts": now, "codec": "none"} for i in range(n)]


def txn_records(t, letter, per_txn, partitions):
    """The records of transaction t of a plan (letter c commits it, a aborts it), over the partitions."""
    return [{"p": j % partitions, "o": -1, "key": None, "h": [], "ts": -1,
             "value": ("txn-%d-%s-%d" % (t, letter, t * per_txn + j)).encode()} for j in range(per_txn)]


def record_fields(r):
    return {"p": r["p"], "o": r["o"], "key": b64(r["key"]), "value": b64(r["value"]),
            "h": [{"k": k, "v": (v or b"").decode()} for k, v in r["h"]], "ts": r["ts"], "codec": r.get("codec")}


def from_consumer_record(msg):
    return {"p": msg.partition, "o": msg.offset, "key": msg.key, "value": msg.value,
            "h": list(msg.headers or []), "ts": msg.timestamp}


class Consumed:
    """What a set of group members read, and when they have read enough."""

    def __init__(self, want):
        self.want = want
        self.total = 0
        self.next_offsets = {}  # member -> {partition: next offset}
        self.lock = threading.Lock()

    def add(self, member, r):
        f = record_fields(r)
        f["member"] = member
        emit("got", **f)
        with self.lock:
            self.next_offsets.setdefault(member, {})[r["p"]] = r["o"] + 1
            self.total += 1

    @property
    def done(self):
        return self.total >= self.want


def deadline_left(deadline, what):
    left = deadline - time.monotonic()
    if left <= 0:
        raise StepFailed(what)
    return left


def resume_member(client, topic, group, n):
    """A new member of group reads the n records past its commits, then commits what it read.
    client: a driver whose member(), poll_into() and commit() work synchronously."""
    deadline = time.monotonic() + 40
    consumed = Consumed(n)
    c = client.member(topic, group)
    try:
        while not consumed.done:
            deadline_left(deadline, "read %d of %d records" % (consumed.total, n))
            client.poll_into("r", c, consumed)
        linger = time.monotonic() + 1.0  # anything read now is one record too many
        while time.monotonic() < linger:
            client.poll_into("r", c, consumed)
        client.commit("r", c, consumed, topic)
    finally:
        c.close()


def check_views(views, partitions):
    """{member: [partitions]} is a complete, disjoint assignment of every member."""
    seen = sorted(p for ps in views.values() for p in ps)
    return seen == list(range(partitions)) and all(views.values())


# ---------------------------------------------------------------------------
# kafka-python 3.0.x


class KafkaPython3:
    name = "kp3"

    def __init__(self, bootstrap):
        import kafka
        self.kafka = kafka
        self.bootstrap = bootstrap

    def admin(self):
        return self.kafka.KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID,
                                           request_timeout_ms=REQUEST_TIMEOUT_MS)

    def producer(self, **extra):
        settings = dict(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID, acks="all",
                        request_timeout_ms=REQUEST_TIMEOUT_MS, max_block_ms=REQUEST_TIMEOUT_MS,
                        enable_idempotence=False, max_in_flight_requests_per_connection=1, linger_ms=5)
        settings.update(extra)
        return self.kafka.KafkaProducer(**settings)

    def consumer(self, **extra):
        settings = dict(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID, enable_auto_commit=False,
                        auto_offset_reset="earliest", fetch_max_wait_ms=200, request_timeout_ms=30000)
        settings.update(extra)
        return self.kafka.KafkaConsumer(**settings)

    def metadata(self, topic):
        admin = self.admin()
        try:
            # What the client's probe (ApiVersions) stored. Not admin.api_versions():
            # kafka-python 3.0.12 maps each key to its ApiKey enum there and raises
            # on a key it does not know (Kafka 4.4 advertises 93).
            versions = {int(k): list(v) for k, v in admin._manager.broker_version_data.api_versions.items()}
            emit("versions", versions={str(k): v for k, v in sorted(versions.items())},
                 guess=".".join(map(str, admin._manager.broker_version)))
            cluster = admin.describe_cluster()  # DescribeCluster, Metadata on older brokers
            brokers = sorted(({"id": b["broker_id"], "host": b["host"], "port": b["port"]}
                              for b in cluster["brokers"]), key=lambda b: b["id"])
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True)
            emit("metadata", brokers=brokers, controller=cluster["controller_id"],
                 cluster=cluster.get("cluster_id"), topics=admin.list_topics())
            self.emit_topic(admin, "topic", topic)
        finally:
            admin.close()

    def emit_topic(self, admin, step, topic):
        found = [t for t in admin.describe_topics([topic]) if t["name"] == topic]
        if not found:
            emit(step, topic=topic, listed=False, error=None, partitions=None)
            return
        t = found[0]
        parts = sorted(({"partition": p["partition_index"], "leader": p["leader_id"], "replicas": p["replica_nodes"],
                         "isr": p["isr_nodes"], "error": p["error_code"] or None} for p in t["partitions"]),
                       key=lambda p: p["partition"])
        emit(step, topic=topic, listed=True, error=t["error_code"] or None, partitions=parts)

    def describe(self, admin, step, topic, until=None):
        """DescribeConfigs; with until=(key, value), again for at most 5 s until key has value
        (Kafka applies a change to its metadata cache just after answering)."""
        from kafka.admin import ConfigResource, ConfigResourceType, ConfigSourceType
        for _ in range(50):
            res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
            configs = {k: {"value": c["value"], "source": int(ConfigSourceType[c["config_source"]])}
                       for k, c in res["topic"][topic].items()}
            if until is None or configs.get(until[0], {}).get("value") == until[1]:
                break
            time.sleep(0.1)
        emit(step, error=None, configs=configs)

    def admin_story(self, topic):
        from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
        errors = self.kafka.errors
        admin = self.admin()
        try:
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                         "configs": {"retention.ms": "3600000", "cleanup.policy": "compact"}}},
                                wait_for_metadata=True)
            emit("create", error=None)
            try:
                admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
                emit("create-again", error=None, kafka_error=0)
            except errors.KafkaError as e:
                emit("create-again", error=str(e), kafka_error=error_code(e))
            self.describe(admin, "describe", topic)
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
                "retention.ms": "7200000", "cleanup.policy": (AlterConfigOp.DELETE, None)})], incremental=True)
            emit("alter-incremental", error=None)
            self.describe(admin, "describe-after-alter", topic, until=("retention.ms", "7200000"))
            # The legacy AlterConfigs replaces the whole set; kafka-python 3 first
            # reads the topic's modified keys and sends them along, so
            # retention.ms keeps its value.
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
                "segment.bytes": "1048576"})], incremental=False)
            emit("alter-state", error=None, keeps_modified=True)
            self.describe(admin, "describe-after-state", topic, until=("segment.bytes", "1048576"))
            admin.create_partitions({topic: 5})
            emit("create-partitions", error=None)
            try:
                admin.create_partitions({topic: 2})
                emit("create-partitions-fewer", error=None, kafka_error=0)
            except errors.KafkaError as e:
                emit("create-partitions-fewer", error=str(e), kafka_error=error_code(e))
            self.wait_partitions(admin, topic, 5)
            self.emit_topic(admin, "after-partitions", topic)
            admin.delete_topics([topic])
            emit("delete", error=None)
            for i in range(50):
                if topic not in admin.list_topics():
                    emit("gone", after_polls=i)
                    return
                time.sleep(0.1)
            emit("gone", error="still listed after 5 s")
        finally:
            admin.close()

    def wait_partitions(self, admin, topic, count):
        for _ in range(50):
            t = [t for t in admin.describe_topics([topic]) if t["name"] == topic]
            if t and len(t[0]["partitions"]) == count:
                return
            time.sleep(0.1)

    def send(self, producer, topic, recs):
        futures = [producer.send(topic, key=r["key"], value=r["value"], headers=r["h"], partition=r["p"],
                                 timestamp_ms=r["ts"]) for r in recs]
        producer.flush(timeout=30)
        for r, f in zip(recs, futures):
            md = f.get(timeout=30)
            r["o"] = md.offset
            if md.partition != r["p"]:
                raise StepFailed("record for partition %d acknowledged on %d" % (r["p"], md.partition))

    def produce(self, topic, partitions, per_codec, codecs):
        base_ms = int(time.time() * 1000) - 3600 * 1000
        for codec in codecs:
            recs = make_records(codec, per_codec, partitions, base_ms)
            producer = self.producer(compression_type=None if codec == "none" else codec)
            try:
                self.send(producer, topic, recs)
            finally:
                producer.close(timeout=10)
            for r in recs:
                emit("sent", **record_fields(r))
        self.read_back(topic, partitions)

    def read_back(self, topic, partitions, isolation="read_uncommitted", counts=None):
        from kafka import TopicPartition
        consumer = self.consumer(group_id=None, isolation_level=isolation, max_poll_records=5000)
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            got = {p: 0 for p in range(partitions)}
            deadline = time.monotonic() + 30

            def more():
                if counts is not None:
                    return any(got[p] < counts[p] for p in range(partitions))
                return any(consumer.position(tp) < ends[tp] for tp in tps)

            while more():
                deadline_left(deadline, "read %r of %s, want %r" % (got, topic, counts or ends))
                for tp, msgs in consumer.poll(timeout_ms=500).items():
                    for m in msgs:
                        if counts is None or got[tp.partition] < counts[tp.partition]:
                            got[tp.partition] += 1
                            emit("got", **record_fields(from_consumer_record(m)))
            for tp in tps:
                emit("end", p=tp.partition, offset=ends[tp])
        finally:
            consumer.close()

    def member(self, topic, group):
        c = self.consumer(group_id=group, session_timeout_ms=10000, heartbeat_interval_ms=500,
                          max_poll_records=500)
        # The topic's partitions first, so that the first JoinGroup already
        # assigns them: a leader that assigned nothing for want of metadata
        # rejoins at once, and in that rejoin kafka-python 3.0.12's leader
        # sometimes spins in poll() without heartbeating until its session
        # expires (seen against runnel; a client hang, no request unanswered).
        c.partitions_for_topic(topic)
        c.subscribe([topic])
        return c

    def poll_into(self, name, c, consumed):
        for tp, msgs in c.poll(timeout_ms=100).items():
            for m in msgs:
                consumed.add(name, from_consumer_record(m))

    def commit(self, name, c, consumed, topic):
        from kafka import OffsetAndMetadata, TopicPartition
        offsets = consumed.next_offsets.get(name, {})
        try:
            if offsets:
                c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
            emit("committed", member=name, offsets={str(p): o for p, o in offsets.items()}, error=None)
        except Exception as e:  # noqa: BLE001 - reported to the suite
            emit("committed", member=name, offsets={}, error="%s: %s" % (type(e).__name__, e))

    def group_share(self, topic, group, partitions, n):
        """Each member in a process of its own, as two applications would be.
        Not one thread polling both: a member's poll() does not return while
        its JoinGroup waits for the other, whose heartbeats stop until its
        next poll, so its session expires."""
        import multiprocessing
        mp = multiprocessing.get_context("fork")
        deadline = time.monotonic() + 40
        # leave: both have committed. A member that left first would start a
        # rebalance, and the other's commit would then be refused with
        # REBALANCE_IN_PROGRESS (by Kafka as by runnel: the commit raced the
        # leave), which is not what this story checks.
        events, stop, leave = mp.Queue(), mp.Event(), mp.Event()
        procs = [mp.Process(target=self.member_process, args=(topic, group, name, events, stop, leave), daemon=True)
                 for name in ("a", "b")]
        for proc in procs:
            proc.start()
        consumed = Consumed(n)
        views, committed = {}, set()

        def drain(timeout_s):
            try:
                kind, name, payload = events.get(timeout=timeout_s)
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            if kind == "view":
                views[name] = payload
            elif kind == "got":
                consumed.add(name, payload)
            elif kind == "committed":
                emit("committed", member=name, **payload)
                committed.add(name)
            elif kind == "failed":
                raise StepFailed("member %s: %s" % (name, payload))

        try:
            while not (len(views) == 2 and check_views(dict(views), partitions)):
                deadline_left(deadline, "group %s never shared: %r" % (group, views))
                drain(0.1)
            emit("stable", members=dict(views))
            producer = self.producer()
            try:
                self.send(producer, topic, group_records("share", n, partitions))
            finally:
                producer.close(timeout=10)
            while not consumed.done:
                deadline_left(deadline, "read %d of %d records" % (consumed.total, n))
                drain(0.1)
            stop.set()
            while len(committed) < 2:
                deadline_left(deadline, "members %r did not commit" % sorted({"a", "b"} - committed))
                drain(0.1)
        finally:
            stop.set()
            leave.set()
            for proc in procs:
                proc.join(timeout=max(1.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()

    def member_process(self, topic, group, name, events, stop, leave):
        """One member: sends its assignment and records to the parent; commits when told to stop,
        and leaves the group once told that both have committed."""
        c = self.member(topic, group)
        next_offsets = {}
        try:
            while not stop.is_set():
                for tp, msgs in c.poll(timeout_ms=100).items():
                    for m in msgs:
                        r = from_consumer_record(m)
                        next_offsets[r["p"]] = r["o"] + 1
                        events.put(("got", name, r))
                events.put(("view", name, sorted(tp.partition for tp in c.assignment())))
            from kafka import OffsetAndMetadata, TopicPartition
            from kafka.errors import RebalanceInProgressError
            offsets = {TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in next_offsets.items()}
            error = None
            # kafka-python 3 refuses a commit while it means to rejoin (its
            # metadata snapshot moved, say) and asks the application to poll
            # and retry, as an application does; a few bounded tries.
            for _ in range(COMMIT_TRIES):
                try:
                    if offsets:
                        c.commit(offsets)
                    error = None
                    break
                except RebalanceInProgressError as e:
                    error = "%s: %s" % (type(e).__name__, e)
                    c.poll(timeout_ms=500)  # records it returns were read already
                except Exception as e:  # noqa: BLE001 - reported to the suite
                    error = "%s: %s" % (type(e).__name__, e)
                    break
            events.put(("committed", name, {"offsets": {str(p): o for p, o in next_offsets.items()} if not error else {},
                                            "error": error}))
            # Polling on until both have committed lets a rejoin the other
            # needs complete (a member that does not poll holds a rebalance).
            leave_by = time.monotonic() + STEP_TIMEOUT_S
            while not leave.is_set() and time.monotonic() < leave_by:
                c.poll(timeout_ms=100)
        except Exception as e:  # noqa: BLE001 - reported by the parent
            events.put(("failed", name, "%s: %s" % (type(e).__name__, e)))
        finally:
            c.close()

    def group_resume(self, topic, group, partitions, n):
        producer = self.producer()
        try:
            self.send(producer, topic, group_records("resume", n, partitions))
        finally:
            producer.close(timeout=10)
        resume_member(self, topic, group, n)

    def idempotent(self, topic, partitions, n):
        producer = self.producer(enable_idempotence=True, max_in_flight_requests_per_connection=5)
        try:
            recs = group_records("idem", n * partitions, partitions)
            self.send(producer, topic, recs)
            for r in recs:
                emit("sent", **record_fields(r))
        finally:
            producer.close(timeout=10)
        self.read_back(topic, partitions)

    def txn_produce(self, topic, partitions, txn_id, plan, per_txn):
        producer = self.producer(transactional_id=txn_id, enable_idempotence=True,
                                 max_in_flight_requests_per_connection=5)
        try:
            producer.init_transactions()
            for t, letter in enumerate(plan):
                producer.begin_transaction()
                recs = txn_records(t, letter, per_txn, partitions)
                futures = [producer.send(topic, value=r["value"], partition=r["p"]) for r in recs]
                producer.flush(timeout=30)
                for r, f in zip(recs, futures):
                    r["o"] = f.get(timeout=30).offset
                if letter == "c":
                    producer.commit_transaction()
                else:
                    producer.abort_transaction()
                for r in recs:
                    emit("sent", p=r["p"], o=r["o"], value=b64(r["value"]), commit=letter == "c")
        finally:
            producer.close(timeout=10)

    def txn_consume(self, topic, isolation, counts):
        self.read_back(topic, len(counts), isolation=isolation, counts=counts)


# ---------------------------------------------------------------------------
# aiokafka 0.14


class AioKafka:
    name = "aiokafka"

    def __init__(self, bootstrap):
        import aiokafka
        self.aiokafka = aiokafka
        self.bootstrap = bootstrap

    def run(self, coro):
        return asyncio.run(asyncio.wait_for(coro, STEP_TIMEOUT_S))

    def producer(self, **extra):
        settings = dict(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID, acks="all",
                        request_timeout_ms=REQUEST_TIMEOUT_MS, linger_ms=5)
        settings.update(extra)
        return self.aiokafka.AIOKafkaProducer(**settings)

    def consumer(self, *topics, **extra):
        settings = dict(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID, enable_auto_commit=False,
                        auto_offset_reset="earliest", fetch_max_wait_ms=200, request_timeout_ms=30000)
        settings.update(extra)
        return self.aiokafka.AIOKafkaConsumer(*topics, **settings)

    def admin(self):
        from aiokafka.admin import AIOKafkaAdminClient
        return AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID,
                                   request_timeout_ms=REQUEST_TIMEOUT_MS)

    def metadata(self, topic):
        self.run(self._metadata(topic))

    async def _metadata(self, topic):
        from aiokafka.client import AIOKafkaClient
        client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id=CLIENT_ID,
                                request_timeout_ms=REQUEST_TIMEOUT_MS)
        await client.bootstrap()
        try:
            # Each aiokafka connection asks ApiVersions (v0) and picks, per
            # request, the highest version of its own the broker's range holds.
            conn = await client._get_conn(next(iter(client.cluster.brokers())).nodeId)
            versions = {str(k): [lo, hi] for k, (lo, hi) in sorted(conn._versions.items())}
            emit("versions", versions=versions)
        finally:
            await client.close()
        admin = self.admin()
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            brokers = sorted(({"id": b["node_id"], "host": b["host"], "port": b["port"]}
                              for b in cluster["brokers"]), key=lambda b: b["id"])
            from aiokafka.admin import NewTopic
            await admin.create_topics([NewTopic(topic, 3, 1)])
            await self.wait_partitions(admin, topic, 3)
            emit("metadata", brokers=brokers, controller=cluster["controller_id"],
                 cluster=cluster.get("cluster_id"), topics=await admin.list_topics())
            await self.emit_topic(admin, "topic", topic)
        finally:
            await admin.close()

    async def emit_topic(self, admin, step, topic):
        found = [t for t in await admin.describe_topics([topic]) if t["topic"] == topic]
        if not found:
            emit(step, topic=topic, listed=False, error=None, partitions=None)
            return
        t = found[0]
        parts = sorted(({"partition": p["partition"], "leader": p["leader"], "replicas": p["replicas"],
                         "isr": p["isr"], "error": p["error_code"] or None} for p in t["partitions"]),
                       key=lambda p: p["partition"])
        emit(step, topic=topic, listed=True, error=t["error_code"] or None, partitions=parts)

    async def describe(self, admin, step, topic, until=None):
        """As KafkaPython3.describe."""
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        for _ in range(50):
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            res = responses[0].to_object()["resources"][0]
            if res["error_code"]:
                emit(step, error="DescribeConfigs error %d" % res["error_code"], configs={})
                return
            configs = {e["config_names"]: {"value": e["config_value"], "source": e.get("config_source")}
                       for e in res["config_entries"]}
            if until is None or configs.get(until[0], {}).get("value") == until[1]:
                break
            await asyncio.sleep(0.1)
        emit(step, error=None, configs=configs)

    def admin_story(self, topic):
        self.run(self._admin_story(topic))

    async def _admin_story(self, topic):
        from aiokafka.admin import NewPartitions, NewTopic
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        from aiokafka.errors import KafkaError
        admin = self.admin()
        await admin.start()

        def topic_error(resp, field="topic_errors"):
            errs = [e for e in resp.to_object()[field] if e["error_code"]]
            return errs[0]["error_code"] if errs else 0

        try:
            resp = await admin.create_topics([NewTopic(topic, 3, 1, topic_configs={
                "retention.ms": "3600000", "cleanup.policy": "compact"})])
            code = topic_error(resp)
            emit("create", error=None if not code else "CreateTopics error %d" % code)
            await self.wait_partitions(admin, topic, 3)
            resp = await admin.create_topics([NewTopic(topic, 3, 1)])
            code = topic_error(resp)
            emit("create-again", error=None if not code else "CreateTopics error %d" % code, kafka_error=code)
            await self.describe(admin, "describe", topic)
            # aiokafka's admin has only the legacy AlterConfigs (the whole set).
            emit("alter-incremental", unsupported="aiokafka's admin has no IncrementalAlterConfigs")
            resp = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                             configs={"segment.bytes": "1048576"})])
            codes = [r["error_code"] for one_resp in resp for r in one_resp.to_object()["resources"]]
            emit("alter-state", error=None if not any(codes) else "AlterConfigs errors %r" % codes)
            await self.describe(admin, "describe-after-state", topic, until=("segment.bytes", "1048576"))
            resp = await admin.create_partitions({topic: NewPartitions(5)})
            code = topic_error(resp, "topic_errors")
            emit("create-partitions", error=None if not code else "CreatePartitions error %d" % code)
            try:
                await admin.create_partitions({topic: NewPartitions(2)})
                emit("create-partitions-fewer", error=None, kafka_error=0)
            except KafkaError as e:
                emit("create-partitions-fewer", error=str(e), kafka_error=error_code(e))
            await self.wait_partitions(admin, topic, 5)
            await self.emit_topic(admin, "after-partitions", topic)
            resp = await admin.delete_topics([topic])
            code = topic_error(resp, "topic_error_codes")
            emit("delete", error=None if not code else "DeleteTopics error %d" % code)
            for i in range(50):
                if topic not in await admin.list_topics():
                    emit("gone", after_polls=i)
                    return
                await asyncio.sleep(0.1)
            emit("gone", error="still listed after 5 s")
        finally:
            await admin.close()

    async def wait_partitions(self, admin, topic, count):
        for _ in range(50):
            t = [t for t in await admin.describe_topics([topic]) if t["topic"] == topic]
            if t and len(t[0]["partitions"]) == count and all(p["leader"] >= 0 for p in t[0]["partitions"]):
                return
            await asyncio.sleep(0.1)

    async def send(self, producer, topic, recs):
        futures = [await producer.send(topic, key=r["key"], value=r["value"], headers=r["h"], partition=r["p"],
                                       timestamp_ms=r["ts"]) for r in recs]
        await producer.flush()
        for r, f in zip(recs, futures):
            md = await f
            r["o"] = md.offset
            if md.partition != r["p"]:
                raise StepFailed("record for partition %d acknowledged on %d" % (r["p"], md.partition))

    def produce(self, topic, partitions, per_codec, codecs):
        self.run(self._produce(topic, partitions, per_codec, codecs))

    async def _produce(self, topic, partitions, per_codec, codecs):
        base_ms = int(time.time() * 1000) - 3600 * 1000
        for codec in codecs:
            recs = make_records(codec, per_codec, partitions, base_ms)
            producer = self.producer(compression_type=None if codec == "none" else codec)
            await producer.start()
            try:
                await self.send(producer, topic, recs)
            finally:
                await producer.stop()
            for r in recs:
                emit("sent", **record_fields(r))
        await self.read_back(topic, partitions)

    async def read_back(self, topic, partitions, isolation="read_uncommitted", counts=None):
        from aiokafka import TopicPartition
        consumer = self.consumer(group_id=None, isolation_level=isolation)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            got = {p: 0 for p in range(partitions)}
            deadline = time.monotonic() + 30

            async def more():
                if counts is not None:
                    return any(got[p] < counts[p] for p in range(partitions))
                for tp in tps:
                    if await consumer.position(tp) < ends[tp]:
                        return True
                return False

            while await more():
                deadline_left(deadline, "read %r of %s, want %r" % (got, topic, counts or ends))
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    for m in msgs:
                        if counts is None or got[tp.partition] < counts[tp.partition]:
                            got[tp.partition] += 1
                            emit("got", **record_fields(from_consumer_record(m)))
            for tp in tps:
                emit("end", p=tp.partition, offset=ends[tp])
        finally:
            await consumer.stop()

    def member(self, topic, group):
        return self.consumer(topic, group_id=group, session_timeout_ms=10000, heartbeat_interval_ms=500)

    async def poll_into(self, name, c, consumed):
        for tp, msgs in (await c.getmany(timeout_ms=100)).items():
            for m in msgs:
                consumed.add(name, from_consumer_record(m))

    async def commit(self, name, c, consumed, topic):
        from aiokafka import TopicPartition
        offsets = consumed.next_offsets.get(name, {})
        try:
            if offsets:
                await c.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
            emit("committed", member=name, offsets={str(p): o for p, o in offsets.items()}, error=None)
        except Exception as e:  # noqa: BLE001 - reported to the suite
            emit("committed", member=name, offsets={}, error="%s: %s" % (type(e).__name__, e))

    async def produce_plain(self, topic, recs):
        producer = self.producer()
        await producer.start()
        try:
            await self.send(producer, topic, recs)
        finally:
            await producer.stop()

    def group_share(self, topic, group, partitions, n):
        self.run(self._group_share(topic, group, partitions, n))

    async def _group_share(self, topic, group, partitions, n):
        deadline = time.monotonic() + 40
        consumed = Consumed(n)
        members = {"a": self.member(topic, group), "b": self.member(topic, group)}
        for c in members.values():
            await c.start()
        try:
            while True:
                for name, c in members.items():
                    await self.poll_into(name, c, consumed)
                views = {name: sorted(tp.partition for tp in c.assignment()) for name, c in members.items()}
                if check_views(views, partitions):
                    break
                deadline_left(deadline, "group %s never shared: %r" % (group, views))
            emit("stable", members=views)
            await self.produce_plain(topic, group_records("share", n, partitions))
            while not consumed.done:
                deadline_left(deadline, "read %d of %d records" % (consumed.total, n))
                for name, c in members.items():
                    await self.poll_into(name, c, consumed)
            for name, c in members.items():
                await self.commit(name, c, consumed, topic)
        finally:
            for c in members.values():
                await c.stop()

    def group_resume(self, topic, group, partitions, n):
        self.run(self._group_resume(topic, group, partitions, n))

    async def _group_resume(self, topic, group, partitions, n):
        await self.produce_plain(topic, group_records("resume", n, partitions))
        deadline = time.monotonic() + 40
        consumed = Consumed(n)
        c = self.member(topic, group)
        await c.start()
        try:
            while not consumed.done:
                deadline_left(deadline, "read %d of %d records" % (consumed.total, n))
                await self.poll_into("r", c, consumed)
            linger = time.monotonic() + 1.0  # anything read now is one record too many
            while time.monotonic() < linger:
                await self.poll_into("r", c, consumed)
            await self.commit("r", c, consumed, topic)
        finally:
            await c.stop()

    def idempotent(self, topic, partitions, n):
        self.run(self._idempotent(topic, partitions, n))

    async def _idempotent(self, topic, partitions, n):
        producer = self.producer(enable_idempotence=True)
        await producer.start()
        try:
            recs = group_records("idem", n * partitions, partitions)
            await self.send(producer, topic, recs)
            for r in recs:
                emit("sent", **record_fields(r))
        finally:
            await producer.stop()
        await self.read_back(topic, partitions)

    def txn_produce(self, topic, partitions, txn_id, plan, per_txn):
        self.run(self._txn_produce(topic, partitions, txn_id, plan, per_txn))

    async def _txn_produce(self, topic, partitions, txn_id, plan, per_txn):
        producer = self.producer(transactional_id=txn_id, enable_idempotence=True)
        await producer.start()  # InitProducerId with the transactional id
        try:
            i = 0
            for t, letter in enumerate(plan):
                await producer.begin_transaction()
                recs = []
                for j in range(per_txn):
                    recs.append({"p": j % partitions, "value": ("txn-%d-%s-%d" % (t, letter, i)).encode()})
                    i += 1
                futures = [await producer.send(topic, value=r["value"], partition=r["p"]) for r in recs]
                for r, f in zip(recs, futures):
                    r["o"] = (await f).offset
                if letter == "c":
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
                for r in recs:
                    emit("sent", p=r["p"], o=r["o"], value=b64(r["value"]), commit=letter == "c")
        finally:
            await producer.stop()

    def txn_consume(self, topic, isolation, counts):
        self.run(self.read_back(topic, len(counts), isolation=isolation, counts=counts))


CLIENTS = {"kp3": KafkaPython3, "aiokafka": AioKafka}


def main(argv):
    if len(argv) < 4 or argv[1] not in CLIENTS:
        print("usage: py_driver.py {%s} STEP BOOTSTRAP [ARGS...]" % "|".join(CLIENTS), file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, os.environ.get("PY_DRIVER_LOG", "WARNING")),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client_name, step, bootstrap, args = argv[1], argv[2], argv[3], argv[4:]
    try:
        client = CLIENTS[client_name](bootstrap)
        if step == "metadata":
            client.metadata(args[0])
        elif step == "admin":
            client.admin_story(args[0])
        elif step == "produce":
            client.produce(args[0], int(args[1]), int(args[2]), args[3].split(","))
        elif step == "group-share":
            client.group_share(args[0], args[1], int(args[2]), int(args[3]))
        elif step == "group-resume":
            client.group_resume(args[0], args[1], int(args[2]), int(args[3]))
        elif step == "idempotent":
            client.idempotent(args[0], int(args[1]), int(args[2]))
        elif step == "txn-produce":
            client.txn_produce(args[0], int(args[1]), args[2], args[3], int(args[4]))
        elif step == "txn-consume":
            client.txn_consume(args[0], args[1], [int(c) for c in args[2].split(",")])
        else:
            print("unknown step %r" % step, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001 - every failure is one error event
        import traceback
        traceback.print_exc()
        emit("error", what="%s %s" % (client_name, step), error="%s: %s" % (type(e).__name__, e))
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
