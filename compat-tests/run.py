#!/usr/bin/python3
"""compat-tests/run.py - runnel driven by real Kafka clients.

Each scenario starts its own broker ($RUNNEL, default build/runnel) on a free
port of 127.0.0.1 with its data in a fresh temporary directory, tells a user's
story with real clients (kcat, kafka-python 2.0.2, confluent-kafka-python,
kafkajs 2.2.4, raw sockets), asserts on what the clients got back, and stops
the broker with SIGTERM. A failing scenario prints why, what the clients said,
and the broker's stdout and stderr.

    /usr/bin/python3 compat-tests/run.py             every scenario
    /usr/bin/python3 compat-tests/run.py restart     one (or several) by name
    /usr/bin/python3 compat-tests/run.py --list      their names

The admin and protocol scenarios are here; producing, consuming, recovery and
the on-disk format are in logs.py; consumer groups and committed offsets in
groups.py (its long-lived members run group_member.py, kafkajs kafkajs_group.js);
the Java client (one program in java/) in java_clients.py; the Go clients
(franz-go, sarama, kafka-go: one program in go/) in go_clients.py; kafkajs's
idempotent and transactional producers (kafkajs_txn.js) in js_clients.py;
the current PyPI clients (kafka-python 3, aiokafka: py_driver.py, run by the
interpreter of build/compat-venv) and @platformatic/kafka
(platformatic_driver.mjs) in py_clients.py; librdkafka 2.16 (the PyPI
confluent-kafka wheel: ck_driver.py, run by the same interpreter) in
ck_clients.py; a full disk in storage.py; log compaction in compaction.py;
hostile input, connection floods and slow clients in hostile.py; the
broker, the context and the shared helpers in harness.py; the few
messages spoken on raw sockets in wire.py.

Debian's /usr/bin/python3 is the interpreter that sees Debian's python3-kafka
(2.0.2) and python3-confluent-kafka (1.7.0); tools/deps.sh test installs them,
kcat, kafkajs, Java and the Apache Kafka 4.4.0 jars (whose DumpLogSegments
reads the broker's segments). Only the standard library and those clients
are used.

Environment: RUNNEL (broker binary), RUNNEL_STARTUP_TIMEOUT_S (default 20),
RUNNEL_STOP_TIMEOUT_S (default 20), and those logs.py names. The broker's
command line is Kafka's, `$RUNNEL --override key=value ...`, so a script that
starts Apache Kafka the same way (compat-tests/kafka/reference-broker) runs
this suite against the reference broker.
"""

import argparse
import io
import json
import logging
import os
import random
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
from wire import (API_API_VERSIONS, API_METADATA, WireError, api_versions_v0,  # noqa: E402
                  decode_api_versions_v0, encode_request, metadata_v10, read_frame)
from harness import (BROKER_ID, INVALID_CONFIG, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,  # noqa: E402
                     INVALID_TOPIC, LOG_TAIL_LINES, SCENARIO_TIMEOUT_S, SEGMENT_BYTES_DEFAULT, STARTUP_TIMEOUT_S,
                     TOPIC_ALREADY_EXISTS, UNSUPPORTED_VERSION, Context, Failure, ScenarioTimeout,
                     admin_client, check, check_partitions, describe_topic, described, eventually,
                     expect_kafka_error, kafka_python, kcat_metadata, kcat_topic, resource_configs,
                     topic_configs, HERE, REPO)
import ck_clients  # noqa: E402
import compaction  # noqa: E402
import eos  # noqa: E402
import frames  # noqa: E402
import go_clients  # noqa: E402
import groups  # noqa: E402
import hostile  # noqa: E402
import idempotence  # noqa: E402
import java_clients  # noqa: E402
import java_tools  # noqa: E402
import js_clients  # noqa: E402
import logs  # noqa: E402
import py_clients  # noqa: E402
import storage  # noqa: E402
import transactions  # noqa: E402

# ---------------------------------------------------------------------------
# Scenarios. Each is a user's story; each asserts what the client saw.


def scenario_kcat_metadata(ctx):
    """kcat -L lists the broker, then a topic created with 3 partitions led by broker 1."""
    broker = ctx.broker()
    md = kcat_metadata(ctx, broker)
    check(md.get("brokers") == [{"id": BROKER_ID, "name": broker.bootstrap}],
          "kcat brokers: %r, want [{id: %d, name: %s}]" % (md.get("brokers"), BROKER_ID, broker.bootstrap))
    check(md.get("controllerid") == BROKER_ID, "kcat controllerid: %r" % md.get("controllerid"))
    check(isinstance(md.get("topics"), list), "kcat topics: %r" % md.get("topics"))
    check(all(t["topic"].startswith("__") for t in md["topics"]),
          "a new broker lists user topics: %r" % [t["topic"] for t in md["topics"]])
    ctx.observe("new broker: brokers, controller, topics",
                {"brokers": [(b["id"], b["name"] == broker.bootstrap) for b in md["brokers"]],
                 "controller": md.get("controllerid"), "topics": sorted(t["topic"] for t in md["topics"])})

    # Created with librdkafka too (python3-confluent-kafka), as a kcat user would.
    try:
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError as e:
        raise Failure("confluent_kafka not importable (%s); bash tools/deps.sh test installs it" % e)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000,
                         "logger": logging.getLogger("confluent_kafka")})
    futures = admin.create_topics([NewTopic("kcat-three", num_partitions=3, replication_factor=1)],
                                  operation_timeout=10, request_timeout=15)
    futures["kcat-three"].result(timeout=20)
    ctx.note("confluent_kafka create_topics", "kcat-three created")
    del admin, futures  # librdkafka's threads end here, not after the broker stops

    def listed():
        t = kcat_topic(kcat_metadata(ctx, broker), "kcat-three")
        return t if t and len(t.get("partitions", [])) == 3 else None

    t = eventually(listed, "kcat -L lists kcat-three with 3 partitions")
    check("error" not in t, "kcat-three has an error: %r" % t.get("error"))
    for p in sorted(t["partitions"], key=lambda p: p["partition"]):
        check(p.get("leader") == BROKER_ID, "kcat-three partition %r: leader %r" % (p.get("partition"), p.get("leader")))
        check(p.get("replicas") == [{"id": BROKER_ID}] and p.get("isrs") == [{"id": BROKER_ID}],
              "kcat-three partition %r: replicas %r isrs %r" % (p["partition"], p.get("replicas"), p.get("isrs")))
        check("error" not in p, "kcat-three partition %r: %r" % (p["partition"], p.get("error")))
    check(sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2],
          "kcat-three partitions: %r" % [p["partition"] for p in t["partitions"]])
    ctx.observe("kcat-three partitions (leader, replicas, isrs)",
                {p["partition"]: [p.get("leader"), p.get("replicas"), p.get("isrs"), p.get("error")]
                 for p in t["partitions"]})

    # Asking for one topic returns just it.
    one = kcat_metadata(ctx, broker, "kcat-three")
    check([t["topic"] for t in one["topics"]] == ["kcat-three"],
          "kcat -L -t kcat-three listed %r" % [t["topic"] for t in one["topics"]])
    ctx.observe("kcat -L -t kcat-three lists", [t["topic"] for t in one["topics"]])


def scenario_kafka_python_admin(ctx):
    """kafka-python 2.0.2's admin client: topics and configs, and the errors it branches on."""
    kafka = kafka_python()
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
    errors = kafka.errors
    # A broker-level default a topic inherits through its synonym (retention.ms
    # <- log.retention.ms / .minutes / .hours).
    broker = ctx.broker(overrides=["log.retention.hours=48"])
    admin = admin_client(broker)
    try:
        response = admin.create_topics([
            NewTopic("kp-orders", 3, 1, topic_configs={"retention.ms": "3600000", "cleanup.policy": "compact"}),
            NewTopic("kp-defaults", 1, 1)])
        ctx.note("create_topics kp-orders kp-defaults", response)
        ctx.observe("create_topics kp-orders kp-defaults", sorted(tuple(e) for e in response.topic_errors))
        check(sorted(tuple(e[:2]) for e in response.topic_errors) == [("kp-defaults", 0), ("kp-orders", 0)],
              "create_topics answered %r" % (response.topic_errors,))

        eventually(lambda: "kp-orders" in admin.list_topics(), "list_topics shows kp-orders")
        topic = describe_topic(admin, "kp-orders")
        check(topic["topic"] == "kp-orders", "describe_topics named %r" % topic["topic"])
        check(not topic["is_internal"], "kp-orders is internal")
        check_partitions(topic, 3)
        ctx.observe("describe_topics kp-orders", described(topic))

        configs = topic_configs(admin, "kp-orders")
        ctx.note("describe_configs kp-orders", configs)
        ctx.observe("describe_configs kp-orders", configs)
        check(configs.get("retention.ms") == "3600000", "retention.ms = %r, want the set 3600000" % configs.get("retention.ms"))
        check(configs.get("cleanup.policy") == "compact", "cleanup.policy = %r, want compact" % configs.get("cleanup.policy"))
        check(configs.get("segment.bytes") == SEGMENT_BYTES_DEFAULT,
              "segment.bytes = %r, want the default %s" % (configs.get("segment.bytes"), SEGMENT_BYTES_DEFAULT))
        configs = topic_configs(admin, "kp-defaults")
        ctx.note("describe_configs kp-defaults", configs)
        ctx.observe("describe_configs kp-defaults", configs)
        check(configs.get("retention.ms") == str(48 * 3600 * 1000),
              "kp-defaults retention.ms = %r, want 172800000 from the broker's log.retention.hours=48"
              % configs.get("retention.ms"))
        check(configs.get("cleanup.policy") == "delete", "kp-defaults cleanup.policy = %r" % configs.get("cleanup.policy"))

        # Broker configs must be asked of that broker; kafka-python sends to node 1.
        responses = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(BROKER_ID))])
        bconf = resource_configs(responses, str(BROKER_ID))
        ctx.note("describe_configs broker 1", bconf)
        ctx.observe("describe_configs broker 1 (the keys topics inherit and one overridden)",
                    {k: bconf.get(k) for k in ("log.segment.bytes", "log.retention.hours", "log.retention.ms",
                                               "log.cleanup.policy", "num.partitions", "num.network.threads",
                                               "message.max.bytes", "compression.type",
                                               "auto.create.topics.enable")})
        check(bconf.get("log.segment.bytes") == SEGMENT_BYTES_DEFAULT,
              "broker log.segment.bytes = %r, want %s" % (bconf.get("log.segment.bytes"), SEGMENT_BYTES_DEFAULT))
        check(bconf.get("num.network.threads") == "2",
              "broker num.network.threads = %r, want 2 (set by --override)" % bconf.get("num.network.threads"))

        # Legacy AlterConfigs replaces the topic's whole dynamic config: what is
        # not named goes back to its default (cleanup.policy -> delete).
        response = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-orders",
                                                       configs={"retention.ms": "7200000"})])
        ctx.note("alter_configs kp-orders", response)
        res = response.to_object()["resources"]
        check([(r["error_code"], r["resource_name"]) for r in res] == [(0, "kp-orders")],
              "alter_configs answered %r" % res)
        ctx.observe("alter_configs kp-orders", [(r["error_code"], r["resource_name"]) for r in res])
        configs = topic_configs(admin, "kp-orders")
        ctx.observe("describe_configs kp-orders after alter_configs", configs)
        check(configs.get("retention.ms") == "7200000", "after alter_configs retention.ms = %r" % configs.get("retention.ms"))
        check(configs.get("cleanup.policy") == "delete",
              "after alter_configs (which replaces every topic config) cleanup.policy = %r, want the default delete"
              % configs.get("cleanup.policy"))

        response = admin.create_partitions({"kp-orders": NewPartitions(5)})
        ctx.note("create_partitions kp-orders 5", response)
        eventually(lambda: len(describe_topic(admin, "kp-orders")["partitions"]) == 5, "kp-orders has 5 partitions")
        check_partitions(describe_topic(admin, "kp-orders"), 5)
        ctx.observe("describe_topics kp-orders after create_partitions 5", described(describe_topic(admin, "kp-orders")))

        expect_kafka_error(ctx, errors.InvalidPartitionsError, INVALID_PARTITIONS,
                           lambda: admin.create_partitions({"kp-orders": NewPartitions(2)}),
                           "create_partitions 5 -> 2")
        expect_kafka_error(ctx, errors.TopicAlreadyExistsError, TOPIC_ALREADY_EXISTS,
                           lambda: admin.create_topics([NewTopic("kp-orders", 1, 1)]),
                           "create_topics of an existing topic")
        expect_kafka_error(ctx, errors.InvalidConfigurationError, INVALID_CONFIG,
                           lambda: admin.create_topics([NewTopic("kp-badconfig", 1, 1,
                                                                 topic_configs={"no.such.config": "1"})]),
                           "create_topics with an unknown config key")
        expect_kafka_error(ctx, errors.InvalidReplicationFactorError, INVALID_REPLICATION_FACTOR,
                           lambda: admin.create_topics([NewTopic("kp-rf3", 1, 3)]),
                           "create_topics with replication factor 3 on one broker")
        expect_kafka_error(ctx, errors.InvalidTopicError, INVALID_TOPIC,
                           lambda: admin.create_topics([NewTopic("kp bad/name", 1, 1)]),
                           "create_topics with an invalid name")
        names = admin.list_topics()
        for bad in ("kp-badconfig", "kp-rf3", "kp bad/name"):
            check(bad not in names, "a refused create_topics left %r behind: %r" % (bad, names))
        ctx.observe("list_topics after the refusals", sorted(n for n in names if not n.startswith("__")))

        response = admin.delete_topics(["kp-orders"])
        ctx.note("delete_topics kp-orders", response)
        ctx.observe("delete_topics kp-orders", sorted(tuple(e) for e in response.topic_error_codes))
        eventually(lambda: "kp-orders" not in admin.list_topics(), "kp-orders gone from list_topics")
        ctx.observe("list_topics after delete_topics",
                    sorted(n for n in admin.list_topics() if not n.startswith("__")))
    finally:
        admin.close()
    broker.check_alive()


def scenario_kafkajs_admin(ctx):
    """kafkajs 2.2.4: create, describe, alter, grow, delete, list."""
    module = os.path.join(HERE, "node_modules", "kafkajs", "package.json")
    check(os.path.exists(module), "kafkajs is not installed (bash tools/deps.sh test runs npm ci)")
    broker = ctx.broker()
    code, out, _ = ctx.run(["node", os.path.join(HERE, "kafkajs_admin.js"), str(broker.port), "kjs"],
                           check_exit=False)
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise Failure("kafkajs_admin.js printed no JSON result (%s)" % e)
    check(code == 0 and "failed" not in r,
          "kafkajs step %r failed: %s" % (r.get("failed"), json.dumps(r.get("error"))))
    observe_kafkajs_admin(ctx, r)

    check(r["created"] is True, "createTopics returned %r, want true" % r["created"])
    check(r["createdAgain"] is False, "createTopics of an existing topic returned %r, want false" % r["createdAgain"])
    rf3 = r["createReplicationFactor3"]
    check(rf3["threw"], "createTopics with replication factor 3 succeeded")
    types = [e.get("type") for e in (rf3["error"].get("errors") or [rf3["error"]])]
    check(types == ["INVALID_REPLICATION_FACTOR"], "replication factor 3 failed with %r" % types)

    check({"kjs-orders", "kjs-audit"} <= set(r["listAfterCreate"]), "listTopics: %r" % r["listAfterCreate"])
    check("kjs-rf3" not in r["listAfterCreate"], "refused kjs-rf3 is listed")
    md = {t["name"]: t for t in r["metadataAfterCreate"]["topics"]}
    check(set(md) == {"kjs-orders", "kjs-audit"}, "fetchTopicMetadata topics: %r" % list(md))
    for name, count in (("kjs-orders", 2), ("kjs-audit", 1)):
        parts = sorted(md[name]["partitions"], key=lambda p: p["partitionId"])
        check([p["partitionId"] for p in parts] == list(range(count)), "%s partitions: %r" % (name, parts))
        for p in parts:
            check(p["partitionErrorCode"] == 0 and p["leader"] == BROKER_ID and p["replicas"] == [BROKER_ID]
                  and p["isr"] == [BROKER_ID], "%s partition: %r" % (name, p))

    def entries(step):
        res = r[step]["resources"]
        check(len(res) == 1 and res[0]["errorCode"] == 0, "%s: %r" % (step, res))
        return {e["configName"]: e for e in res[0]["configEntries"]}

    conf = entries("configs")
    check(set(conf) == {"retention.ms", "cleanup.policy", "segment.bytes"},
          "describeConfigs for 3 names returned %r" % sorted(conf))
    check(conf["retention.ms"]["configValue"] == "3600000", "retention.ms: %r" % conf["retention.ms"])
    check(conf["cleanup.policy"]["configValue"] == "compact", "cleanup.policy: %r" % conf["cleanup.policy"])
    check(not conf["retention.ms"]["isDefault"], "retention.ms set at creation is reported as a default")
    check(conf["segment.bytes"]["configValue"] == SEGMENT_BYTES_DEFAULT and conf["segment.bytes"]["isDefault"],
          "segment.bytes: %r, want the default %s" % (conf["segment.bytes"], SEGMENT_BYTES_DEFAULT))
    every = entries("allConfigs")
    for key in ("retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes",
                "min.insync.replicas", "compression.type", "message.timestamp.type"):
        check(key in every, "describeConfigs (all) of kjs-audit lacks %s (has %d keys)" % (key, len(every)))
    check(every["cleanup.policy"]["configValue"] == "delete", "kjs-audit cleanup.policy: %r" % every["cleanup.policy"])

    altered = r["altered"]["resources"]
    check([(a["errorCode"], a["resourceName"]) for a in altered] == [(0, "kjs-orders")], "alterConfigs: %r" % altered)
    conf = entries("configsAfterAlter")
    check(conf["retention.ms"]["configValue"] == "7200000", "retention.ms after alterConfigs: %r" % conf["retention.ms"])
    check(conf["cleanup.policy"]["configValue"] == "delete",
          "cleanup.policy after alterConfigs (which replaces every topic config): %r, want delete"
          % conf["cleanup.policy"]["configValue"])

    parts = r["metadataAfterPartitions"]["topics"][0]["partitions"]
    check(sorted(p["partitionId"] for p in parts) == [0, 1, 2, 3], "after createPartitions 4: %r" % parts)
    shrink = r["shrinkPartitions"]
    check(shrink["threw"], "createPartitions 4 -> 1 succeeded")
    types = [e.get("type") for e in (shrink["error"].get("errors") or [shrink["error"]])]
    check(types == ["INVALID_PARTITIONS"], "createPartitions 4 -> 1 failed with %r" % types)

    check("kjs-orders" not in r["listAfterDelete"] and "kjs-audit" in r["listAfterDelete"],
          "listTopics after deleting kjs-orders: %r" % r["listAfterDelete"])
    broker.check_alive()


def observe_kafkajs_admin(ctx, r):
    """What kafkajs_admin.js's steps answered, ids and messages left out."""
    def error_types(step):
        e = r[step]
        return {"threw": e["threw"], "types": [x.get("type") for x in (e["error"].get("errors") or [e["error"]])]
                if e["threw"] else None}

    def partitions(md):
        return {t["name"]: {p["partitionId"]: [p["partitionErrorCode"], p["leader"], p["replicas"], p["isr"]]
                            for p in t["partitions"]} for t in md["topics"]}

    def configs(step):
        return [{"error": res["errorCode"], "name": res["resourceName"],
                 "entries": {e["configName"]: {k: e.get(k) for k in ("configValue", "isDefault", "configSource",
                                                                      "readOnly", "isSensitive")}
                             for e in res["configEntries"]}} for res in r[step]["resources"]]

    ctx.observe("createTopics", r["created"])
    ctx.observe("createTopics again", r["createdAgain"])
    ctx.observe("createTopics replication factor 3", error_types("createReplicationFactor3"))
    ctx.observe("listTopics after create", sorted(t for t in r["listAfterCreate"] if not t.startswith("__")))
    ctx.observe("fetchTopicMetadata after create", partitions(r["metadataAfterCreate"]))
    ctx.observe("describeConfigs of 3 names", configs("configs"))
    ctx.observe("describeConfigs of all", configs("allConfigs"))
    ctx.observe("alterConfigs", [(a["errorCode"], a["resourceName"]) for a in r["altered"]["resources"]])
    ctx.observe("describeConfigs after alterConfigs", configs("configsAfterAlter"))
    ctx.observe("createPartitions 4", r.get("partitionsCreated"))
    ctx.observe("fetchTopicMetadata after createPartitions", partitions(r["metadataAfterPartitions"]))
    ctx.observe("createPartitions 4 -> 1", error_types("shrinkPartitions"))
    ctx.observe("deleteTopics", r.get("deleted"))
    ctx.observe("listTopics after delete", sorted(t for t in r["listAfterDelete"] if not t.startswith("__")))


def read_properties(path):
    props = {}
    with open(path, "r") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("!"):
                key, _, value = line.partition("=" if "=" in line else ":")
                props[key.strip()] = value.strip()
    return props


def partition_metadata_topic_id(path):
    with open(path, "r") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "topic_id":
                return value.strip()
    raise Failure("%s has no topic_id line" % path)


def scenario_restart(ctx):
    """Topics, partitions, ids and configs survive a restart on the same data."""
    kafka_python()
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    broker = ctx.broker()
    data = broker.data_dir

    def snapshot(label):
        admin = admin_client(broker)
        try:
            names = sorted(n for n in admin.list_topics() if not n.startswith("__"))
            topics = {n: describe_topic(admin, n) for n in names}
            configs = {n: topic_configs(admin, n) for n in names}
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        ids = None
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
            _, _, api_keys, _ = api_versions_v0(s, 7)
            lo, hi = api_keys.get(API_METADATA, (0, -1))
            if lo <= 10 <= hi:
                md = metadata_v10(s, 8)
                ids = {n: md["topics"][n]["topic_id"] for n in names if n in md["topics"]}
            else:
                ctx.skip_check("Metadata v10 not advertised (versions %d-%d): topic ids not compared" % (lo, hi))
        ctx.note(label, {"names": names, "cluster": cluster, "ids": ids,
                         "configs": {n: {k: configs[n].get(k) for k in ("retention.ms", "cleanup.policy")}
                                     for n in names}})
        # The ids are generated: observed is that each topic has one, and that
        # the cluster id has Kafka's shape (a UUID in 22 characters of base64).
        ctx.observe("topics %s" % label, {n: {"partitions": described(topics[n])["partitions"],
                                               "has topic id": (ids or {}).get(n) not in (None, "", "A" * 22),
                                               "configs": configs[n]} for n in names})
        ctx.observe("cluster %s" % label, {"controller": cluster.get("controller_id"),
                                            "brokers": [(b["node_id"], b["port"] == broker.port)
                                                        for b in cluster.get("brokers", [])],
                                            "cluster id length": len(cluster.get("cluster_id") or "")})
        return names, topics, configs, cluster, ids

    admin = admin_client(broker)
    try:
        admin.create_topics([NewTopic("rs-events", 3, 1, topic_configs={"cleanup.policy": "compact"}),
                             NewTopic("rs-audit", 1, 1)])
        eventually(lambda: {"rs-events", "rs-audit"} <= set(admin.list_topics()), "both topics listed")
        response = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "rs-audit",
                                                       configs={"retention.ms": "86400000"})])
        check(response.to_object()["resources"][0]["error_code"] == 0, "alter_configs: %r" % response)
    finally:
        admin.close()

    before = snapshot("before restart")
    names, topics, configs, cluster, ids = before
    check(names == ["rs-audit", "rs-events"], "topics before restart: %r" % names)
    check(configs["rs-events"].get("cleanup.policy") == "compact", "rs-events cleanup.policy %r" % configs["rs-events"])
    check(configs["rs-audit"].get("retention.ms") == "86400000", "rs-audit retention.ms %r" % configs["rs-audit"])

    broker.stop()
    check(not broker.problems, "; ".join(broker.problems))

    # Kafka's layout: meta.properties per log dir, partition.metadata per partition.
    meta_path = os.path.join(data, "meta.properties")
    check(os.path.isfile(meta_path), "no meta.properties in the data dir: %r" % sorted(os.listdir(data)))
    meta = read_properties(meta_path)
    ctx.note("meta.properties", meta)
    ctx.observe("meta.properties keys", sorted(meta))
    check(meta.get("node.id") == str(BROKER_ID), "meta.properties node.id = %r" % meta.get("node.id"))
    check(meta.get("cluster.id") and meta.get("cluster.id") == cluster.get("cluster_id"),
          "meta.properties cluster.id %r, Metadata said %r" % (meta.get("cluster.id"), cluster.get("cluster_id")))
    disk_ids = {}
    for name, count in (("rs-events", 3), ("rs-audit", 1)):
        for p in range(count):
            path = os.path.join(data, "%s-%d" % (name, p), "partition.metadata")
            check(os.path.isfile(path), "missing %s-%d/partition.metadata (data dir: %r)" % (name, p, sorted(os.listdir(data))))
            disk_ids.setdefault(name, set()).add(partition_metadata_topic_id(path))
    for name, found in disk_ids.items():
        check(len(found) == 1, "%s partitions disagree on the topic id: %r" % (name, found))
        if ids is not None:
            check(found == {ids[name]}, "%s: partition.metadata has %r, Metadata v10 said %r" % (name, found, ids[name]))

    broker.start()
    after = snapshot("after restart")
    names2, topics2, configs2, cluster2, ids2 = after
    check(names2 == names, "topics after restart %r, before %r" % (names2, names))
    for name in names:
        check(len(topics2[name]["partitions"]) == len(topics[name]["partitions"]),
              "%s: %d partitions after restart, %d before" % (name, len(topics2[name]["partitions"]),
                                                               len(topics[name]["partitions"])))
        check_partitions(topics2[name], len(topics[name]["partitions"]))
        for key in ("cleanup.policy", "retention.ms", "segment.bytes"):
            check(configs2[name].get(key) == configs[name].get(key),
                  "%s %s after restart %r, before %r" % (name, key, configs2[name].get(key), configs[name].get(key)))
    check(cluster2.get("cluster_id") == cluster.get("cluster_id"),
          "cluster id changed across restart: %r -> %r" % (cluster.get("cluster_id"), cluster2.get("cluster_id")))
    check(ids2 == ids, "topic ids changed across restart: %r -> %r" % (ids, ids2))
    broker.check_alive()


def expect_closed(sock, what, timeout_s=5.0):
    """The broker must close this connection (EOF or reset), not answer."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise Failure("%s: connection still open after %.0f s, want it closed" % (what, timeout_s))
            sock.settimeout(left_s)
            data = sock.recv(4096)
            if not data:
                return
            raise Failure("%s: broker answered %d bytes (%r...), want the connection closed"
                          % (what, len(data), data[:32]))
    except (ConnectionResetError, BrokenPipeError):
        return
    except socket.timeout:
        raise Failure("%s: connection still open after %.0f s, want it closed" % (what, timeout_s))


def scenario_hostile_input(ctx):
    """Oversized, garbage, unknown-key and unsupported-version frames; others keep being served."""
    broker = ctx.broker()
    addr = ("127.0.0.1", broker.port)
    correlation = [100]

    def next_correlation():
        correlation[0] += 1
        return correlation[0]

    # A bystander connected before the hostile frames must keep being served.
    bystander = socket.create_connection(addr, timeout=5)

    def still_served(after):
        for label, s in (("bystander", bystander), ("new client", None)):
            conn = s or socket.create_connection(addr, timeout=5)
            try:
                corr = next_correlation()
                got, err, keys, _ = api_versions_v0(conn, corr)
                check(got == corr and err == 0 and API_API_VERSIONS in keys,
                      "after %s, %s's ApiVersions v0: corr %d (sent %d) error %d keys %d"
                      % (after, label, got, corr, err, len(keys)))
            except (OSError, Failure, WireError) as e:
                raise Failure("after %s, %s not served: %s" % (after, label, e))
            finally:
                if s is None:
                    conn.close()
        broker.check_alive()

    try:
        still_served("connecting")

        # (1) A frame announcing 200 MiB, past socket.request.max.bytes (100 MiB):
        # closed without reading (or allocating) it.
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(struct.pack(">i", 200 << 20) + encode_request(API_API_VERSIONS, 0, 1)[4:])
            expect_closed(s, "a 200 MiB frame")
        still_served("a 200 MiB frame")

        # (2) 64 random bytes, size-prefixed. Re-drawn while the first two bytes
        # would name a real API key, so the frame is garbage to any broker.
        seed = random.randrange(1 << 32)
        rng = random.Random(seed)
        garbage = bytes(rng.randrange(256) for _ in range(64))
        while 0 <= struct.unpack(">h", garbage[:2])[0] < 200:
            garbage = bytes(rng.randrange(256) for _ in range(64))
        ctx.note("garbage frame", "seed %d: %s" % (seed, garbage.hex()))
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(struct.pack(">i", len(garbage)) + garbage)
            expect_closed(s, "64 random bytes (seed %d)" % seed)
        still_served("64 random bytes")

        # (3) A well-formed header naming API key 9999: Kafka closes the connection
        # (kafka-python 2.0.2's version probe relies on exactly that).
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(encode_request(9999, 0, next_correlation()))
            expect_closed(s, "unknown API key 9999")
        still_served("unknown API key 9999")

        # (4) ApiVersions v99 (KIP-511): answered in the v0 body format with
        # UNSUPPORTED_VERSION and the broker's api keys, so a client can retry
        # with a version the broker has. Sent as a future client would: request
        # header v2 and a v3-style body (client software name and version).
        with socket.create_connection(addr, timeout=5) as s:
            corr = next_correlation()
            body = b"\x0erunnel-compat" + b"\x040.1" + b"\x00"
            s.sendall(encode_request(API_API_VERSIONS, 99, corr, body, flexible=True))
            payload = read_frame(s)
            check(payload is not None, "ApiVersions v99: connection closed, want an UNSUPPORTED_VERSION answer")
            got, err, keys, trailing = decode_api_versions_v0(payload)
            ctx.note("ApiVersions v99 answer", {"corr": got, "error": err, "keys": keys, "trailing": trailing})
            ctx.observe("ApiVersions v99: error, and whether ApiVersions v0 is among the keys listed",
                        [err, keys.get(API_API_VERSIONS, [None])[0]])
            check(got == corr, "ApiVersions v99: correlation id %d, sent %d" % (got, corr))
            check(err == UNSUPPORTED_VERSION, "ApiVersions v99: error %d, want %d" % (err, UNSUPPORTED_VERSION))
            # Kafka lists just ApiVersions itself here (ApiVersionsRequest.getErrorResponse);
            # that entry is what librdkafka and kafkajs retry with.
            check(API_API_VERSIONS in keys and keys[API_API_VERSIONS][0] == 0,
                  "ApiVersions v99 answer lists %r, want at least ApiVersions from v0" % keys)
            check(trailing == 0, "ApiVersions v99 answer: %d bytes after the v0 body" % trailing)
            # The same connection goes on: the client retries with v0.
            corr = next_correlation()
            got, err, keys, trailing = api_versions_v0(s, corr)
            check(got == corr and err == 0 and keys, "ApiVersions v0 after v99 on the same connection: %d %d" % (got, err))
            check(trailing == 0, "ApiVersions v0 answer: %d bytes after the v0 body" % trailing)
        still_served("ApiVersions v99")

        # And a real client still works.
        admin = admin_client(broker)
        try:
            topics = admin.list_topics()
            ctx.note("kafka-python list_topics after hostile input", topics)
        finally:
            admin.close()
    finally:
        bystander.close()
    broker.check_alive()


def scenario_metadata_at_start(ctx):
    """From its very first answer, a (re)started broker advertises its own port in Metadata."""
    import threading
    # A client that connects the moment the port accepts (the listeners
    # take connections into their backlog before the reactors run) and asks
    # Metadata first thing, as a producer reconnecting after a crash does.
    # runnel used to set the advertised port only after the reactors had
    # started answering: the first answers said port 0, and librdkafka then
    # connected to 127.0.0.1:0 for good.
    broker = ctx.broker(start=False)
    answers, errors = [], []
    stop = threading.Event()

    def probe():
        corr = 0
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", broker.port), timeout=2.0) as s:
                    corr += 1
                    md = metadata_v10(s, corr)
                    answers.append([(b["node_id"], b["host"], b["port"]) for b in md["brokers"]])
            except (OSError, WireError) as e:
                errors.append(str(e))
                time.sleep(0.0005)

    rounds = METADATA_AT_START_ROUNDS
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        for i in range(rounds):
            broker.start()
            deadline = time.monotonic() + 5
            count = len(answers)
            while len(answers) < count + 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            broker.kill()
    finally:
        stop.set()
        thread.join(timeout=10)
    check(len(answers) >= rounds, "%d Metadata answers over %d starts" % (len(answers), rounds))
    want = [(BROKER_ID, "127.0.0.1", broker.port)]
    wrong = [a for a in answers if a != want]
    check(not wrong, "%d of %d Metadata answers right after a start advertised %r, want %r"
          % (len(wrong), len(answers), wrong[:3], want))
    ctx.say("%d starts, %d Metadata answers, each advertising %s" % (rounds, len(answers), broker.bootstrap))
    broker.start()


# Each round is a start: the reference broker's take some 10 s each, more
# than the default scenario time allows for ten of them.
METADATA_AT_START_ROUNDS = 10
scenario_metadata_at_start.timeout_s = 60 + (METADATA_AT_START_ROUNDS + 1) * (STARTUP_TIMEOUT_S + 5)


def scenario_port_in_use(ctx):
    """A second broker on a port already in use fails at start with "Address already in use"; the first serves on."""
    import subprocess
    first = ctx.broker()
    # Issue 8: the listeners share their port with SO_REUSEPORT, so a second
    # runnel joined the first one's group and started without a word.
    second = ctx.broker(start=False)
    second.port = first.port
    argv = second.argv()
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd=REPO, timeout=STARTUP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        ctx.note("second broker", (e.output or b"").decode(errors="replace"))
        raise Failure("a second broker on port %d was still running after %.0f s (killed); it should refuse "
                      "to start" % (first.port, STARTUP_TIMEOUT_S))
    out = res.stdout.decode(errors="replace")
    ctx.note("second broker (exit %d)" % res.returncode, out)
    check(res.returncode != 0, "a second broker on port %d exited with 0" % first.port)
    check("Address already in use" in out, "the second broker does not say the address is in use")
    first.check_alive()
    first.wait_ready()
    md = kcat_metadata(ctx, first)
    check(md.get("brokers") == [{"id": BROKER_ID, "name": first.bootstrap}],
          "the first broker after the second one failed: %r" % md.get("brokers"))


SCENARIOS = [
    ("kcat_metadata", scenario_kcat_metadata),
    ("kafka_python_admin", scenario_kafka_python_admin),
    ("kafkajs_admin", scenario_kafkajs_admin),
    ("restart", scenario_restart),
    ("hostile_input", scenario_hostile_input),
    ("port_in_use", scenario_port_in_use),
    ("metadata_at_start", scenario_metadata_at_start),
] + (logs.SCENARIOS + groups.SCENARIOS + idempotence.SCENARIOS + transactions.SCENARIOS + eos.SCENARIOS
     + java_tools.SCENARIOS + java_clients.SCENARIOS + go_clients.SCENARIOS + js_clients.SCENARIOS
     + py_clients.SCENARIOS + ck_clients.SCENARIOS + storage.SCENARIOS + compaction.SCENARIOS + hostile.SCENARIOS
     + frames.SCENARIOS)


# ---------------------------------------------------------------------------
# Runner


RESULTS = {}  # scenario -> {"status": pass | fail | skip, "reason", "seconds"}
ADVERTISED = set()  # API keys the broker under test advertised


def _on_alarm(signum, frame):
    raise ScenarioTimeout("scenario ran past its time limit (SCENARIO_TIMEOUT_S, or its own timeout_s)")


def run_scenario(name, fn, binary, keep):
    workdir = tempfile.mkdtemp(prefix="runnel-compat-%s-" % name)
    ctx = Context(binary, workdir)
    # kafka-python and librdkafka log what they sent and why they gave up;
    # keep it for a failure.
    client_log = io.StringIO()
    handler = logging.StreamHandler(client_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    client_loggers = [logging.getLogger("kafka"), logging.getLogger("confluent_kafka")]
    for logger in client_loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False

    error = None
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _on_alarm)
    # A scenario whose length grows with a setting says so (crash_recovery's rounds).
    timeout_s = getattr(fn, "timeout_s", SCENARIO_TIMEOUT_S)
    signal.alarm(int(timeout_s))
    try:
        fn(ctx)
    except Exception:  # noqa: BLE001 - every failure is reported the same way
        error = traceback.format_exc()
    finally:
        signal.alarm(0)
        for b in ctx.brokers:
            try:
                b.stop()
            except Exception:  # noqa: BLE001
                b.problems.append("stopping the broker failed:\n" + traceback.format_exc())
        for logger in client_loggers:
            logger.removeHandler(handler)
    elapsed_s = time.monotonic() - started

    problems = [p for b in ctx.brokers for p in b.problems]
    ctx.notes.extend(n for b in ctx.brokers for n in b.stop_notes)
    ok = error is None and not problems
    for b in ctx.brokers:
        if b.api_keys:
            ADVERTISED.update(b.api_keys)
    RESULTS[name] = {"status": "pass" if ok and not ctx.skipped else "skip" if ok else "fail",
                     "reason": "; ".join(ctx.skipped) if ok else (error or "; ".join(problems)).strip()[-300:],
                     "seconds": round(elapsed_s, 2),
                     "ports": [b.port for b in ctx.brokers],
                     "observed": ctx.observations}
    # SKIP: it passed, but some of its checks could not be made (a client
    # not installed, an API the broker lacks); the notes say which.
    label = {"pass": "PASS", "skip": "SKIP", "fail": "FAIL"}[RESULTS[name]["status"]]
    print("%s  %-20s %6.2f s" % (label, name, elapsed_s), flush=True)
    for text in ctx.notes:
        print("    note: " + text, flush=True)
    if not ok:
        out = []
        if error:
            out.append(error.rstrip())
        for p in problems:
            out.append("broker: " + p)
        for label, text in ctx.transcript:
            out.append("--- client: %s\n%s" % (label, text.rstrip()))
        log_lines = client_log.getvalue().splitlines()
        if log_lines:
            out.append("--- client library log (last %d of %d lines)\n%s"
                       % (min(len(log_lines), LOG_TAIL_LINES), len(log_lines),
                          "\n".join(log_lines[-LOG_TAIL_LINES:])))
        for b in ctx.brokers:
            out.append(b.report())
        print("\n".join("    " + line for line in "\n".join(out).splitlines()), flush=True)
    if keep or not ok and keep is None:
        print("    (kept %s)" % workdir, flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return ok


def main():
    parser = argparse.ArgumentParser(description="runnel driven by real Kafka clients.")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="names to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the scenario names and exit")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's data and logs")
    parser.add_argument("--results", metavar="FILE",
                        help="write each scenario's outcome and the advertised API keys as JSON (compat-tests/matrix.py)")
    args = parser.parse_args()

    if args.list:
        for name, fn in SCENARIOS:
            print("%-20s %s" % (name, fn.__doc__.strip().splitlines()[0]))
        return 0

    by_name = dict(SCENARIOS)
    unknown = [n for n in args.scenarios if n not in by_name]
    if unknown:
        print("unknown scenario(s): %s; --list names them" % ", ".join(unknown), file=sys.stderr)
        return 2
    selected = [(n, by_name[n]) for n in args.scenarios] or SCENARIOS

    binary = os.environ.get("RUNNEL", "build/runnel")
    if not os.path.isabs(binary) and not os.path.exists(binary):
        binary = os.path.join(REPO, binary)
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print("broker binary %s is missing or not executable (make build/runnel)" % binary, file=sys.stderr)
        return 1

    print("compat-tests: broker %s" % binary, flush=True)
    passed = failed = skipped = 0
    for name, fn in selected:
        if not run_scenario(name, fn, binary, keep=True if args.keep else None):
            failed += 1
        elif RESULTS[name]["status"] == "skip":
            skipped += 1
        else:
            passed += 1
        if args.results:  # after each scenario: a long run cut short still says what it found
            write_results(args.results, binary)
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""), flush=True)
    return 0 if failed == 0 else 1


def write_results(path, binary):
    """Rewrites the results file; a failure (a full disk) is said, and the run goes on."""
    try:
        with open(path + ".tmp", "w") as f:
            json.dump({"broker": binary, "scenarios": RESULTS, "advertised": sorted(ADVERTISED)}, f, indent=1)
        os.replace(path + ".tmp", path)
    except OSError as e:
        print("compat-tests: could not write %s: %s" % (path, e), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
