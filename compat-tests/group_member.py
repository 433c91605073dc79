#!/usr/bin/python3
"""group_member.py - one consumer-group member in a process of its own, for compat-tests/groups.py.

    group_member.py --client confluent|kafka-python --bootstrap HOST:PORT --group G
                    --topic T --strategy range|roundrobin|cooperative-sticky
                    [--client-id ID] [--session-ms 6000] [--deadline-s 80]

Subscribes to T in group G and polls. Every time its assignment changes it
prints one JSON line on stdout:

    {"event": "assignment", "t": <time.monotonic()>, "partitions": [0, 2]}

(CLOCK_MONOTONIC is system-wide on Linux, so the parent compares these times
with its own.) A line "close" on stdin closes the consumer cleanly (LeaveGroup)
and prints {"event": "closed", "t": ...}; SIGKILL from the parent is the
crash. The process ends by itself after --deadline-s, whatever happens.
Client errors are printed as {"event": "error", ...} and on stderr.

Debian's /usr/bin/python3 sees python3-confluent-kafka 1.7.0 (librdkafka
2.0.2) and python3-kafka 2.0.2.
"""

import argparse
import json
import logging
import sys
import threading
import time

sys.dont_write_bytecode = True


def emit(obj):
    obj.setdefault("t", time.monotonic())
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stdin_watcher(flag):
    for line in sys.stdin:
        if line.strip() == "close":
            flag.set()
            return
    flag.set()  # the parent went away: leave too


def confluent_member(args, close_flag, deadline):
    from confluent_kafka import Consumer
    logger = logging.getLogger("member")
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "partition.assignment.strategy": args.strategy,
        "session.timeout.ms": args.session_ms,
        "heartbeat.interval.ms": 500,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 1000,
        "socket.timeout.ms": 10000,
        "logger": logger,
    })

    consumer.subscribe([args.topic])
    last = None
    try:
        while time.monotonic() < deadline and not close_flag.is_set():
            msg = consumer.poll(0.1)
            if msg is not None and msg.error():
                emit({"event": "error", "error": str(msg.error())})
            current = sorted(tp.partition for tp in consumer.assignment() if tp.topic == args.topic)
            if current != last:
                last = current
                emit({"event": "assignment", "partitions": current})
    finally:
        consumer.close()
        emit({"event": "closed"})


def kafka_python_member(args, close_flag, deadline):
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    assignors = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap, group_id=args.group, client_id=args.client_id,
        partition_assignment_strategy=[assignors[args.strategy]],
        session_timeout_ms=args.session_ms, heartbeat_interval_ms=500,
        enable_auto_commit=False, auto_offset_reset="earliest",
        metadata_max_age_ms=1000, request_timeout_ms=max(30000, args.session_ms + 5000),
        api_version_auto_timeout_ms=10000)
    consumer.subscribe([args.topic])
    last = None
    try:
        while time.monotonic() < deadline and not close_flag.is_set():
            consumer.poll(timeout_ms=100)
            current = sorted(tp.partition for tp in consumer.assignment() if tp.topic == args.topic)
            if current != last:
                last = current
                emit({"event": "assignment", "partitions": current})
    finally:
        consumer.close()
        emit({"event": "closed"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=("confluent", "kafka-python"), required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--strategy", required=True)
    p.add_argument("--client-id", default="runnel-group-member")
    p.add_argument("--session-ms", type=int, default=6000)
    p.add_argument("--deadline-s", type=float, default=80.0)
    args = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s " + args.client_id + " %(name)s %(levelname)s %(message)s")
    close_flag = threading.Event()
    threading.Thread(target=stdin_watcher, args=(close_flag,), daemon=True).start()
    deadline = time.monotonic() + args.deadline_s
    emit({"event": "started", "pid": __import__("os").getpid()})
    try:
        if args.client == "confluent":
            confluent_member(args, close_flag, deadline)
        else:
            kafka_python_member(args, close_flag, deadline)
    except Exception as e:  # noqa: BLE001 - reported to the parent
        emit({"event": "error", "error": "%s: %s" % (type(e).__name__, e)})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
