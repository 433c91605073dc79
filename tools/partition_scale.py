#!/usr/bin/python3
"""tools/partition_scale.py - what one topic of many partitions costs a broker.

Starts its own broker (build/runnel unless --broker) on a free port of
127.0.0.1 with its data in a temporary directory, then, bounded in time:
creates a topic of --partitions partitions (CreateTopics, timed as the
client sees it: request sent to answer received), produces one record to
every partition (acks=1) and counts the broker's open descriptors before
and after. Prints one JSON line and stops the broker with SIGTERM.

    /usr/bin/python3 tools/partition_scale.py --partitions 1000
    /usr/bin/python3 tools/partition_scale.py --partitions 10000 --nofile 20000

--nofile sets the broker's open-files limit (soft and hard), to see where
it runs out. Uses python3-confluent-kafka (librdkafka); not a test: it
prints figures.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_port(port, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("broker exited with %s during start-up" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("broker not listening within %.0f s" % timeout_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default=os.path.join(REPO, "build", "runnel"))
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--nofile", type=int, default=0, help="the broker's open-files limit (0: inherited)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--keep", action="store_true", help="keep the data and the broker's log")
    ap.add_argument("--create-only", action="store_true", help="create the topic, produce nothing")
    args = ap.parse_args()

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    work = tempfile.mkdtemp(prefix="runnel-partition-scale-")
    port = free_port()
    listener = "PLAINTEXT://127.0.0.1:%d" % port
    argv = [args.broker, "--override", "listeners=" + listener, "--override", "advertised.listeners=" + listener,
            "--override", "log.dirs=" + os.path.join(work, "data")]

    def limit():
        if args.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    log_path = os.path.join(work, "broker.log")
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=limit,
                                start_new_session=True)
    out = {"broker": args.broker, "partitions": args.partitions, "nofile": args.nofile or None}
    try:
        wait_port(port, proc, 30)
        conf = {"bootstrap.servers": "127.0.0.1:%d" % port}
        out["fds_idle"] = fd_count(proc.pid)

        admin = AdminClient(conf)
        t0 = time.monotonic()
        fs = admin.create_topics([NewTopic("scale", args.partitions, 1)], operation_timeout=120,
                                 request_timeout=120)
        fs["scale"].result(timeout=150)
        out["create_ms"] = round((time.monotonic() - t0) * 1000, 1)
        out["fds_created"] = fd_count(proc.pid)

        if args.create_only:
            return finish(proc, out, log_path, work, args)
        producer = Producer(dict(conf, **{"acks": "1", "linger.ms": 5, "message.timeout.ms": 60000}))
        failed = []

        def delivered(err, msg):
            if err is not None:
                failed.append(str(err))

        t0 = time.monotonic()
        for p in range(args.partitions):
            while True:
                try:
                    producer.produce("scale", value=b"x" * 100, partition=p, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)
            if time.monotonic() - started > args.timeout:
                raise RuntimeError("out of time producing")
        left = producer.flush(max(1.0, args.timeout - (time.monotonic() - started)))
        out["produce_s"] = round(time.monotonic() - t0, 2)
        out["undelivered"] = left
        out["delivery_errors"] = len(failed)
        if failed:
            out["first_delivery_error"] = failed[0]
        out["fds_produced"] = fd_count(proc.pid)
        out["fds_per_partition"] = round((out["fds_produced"] - out["fds_idle"]) / args.partitions, 3)
        out["broker_alive"] = proc.poll() is None
    except Exception as e:  # noqa: BLE001 - reported in the JSON
        out["error"] = str(e)
    return finish(proc, out, log_path, work, args)


def finish(proc, out, log_path, work, args):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    out["exit_code"] = proc.returncode
    with open(log_path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
    out["broker_log_lines"] = len(lines)
    out["broker_warn_error_lines"] = sum(1 for x in lines if " WARN " in x or " ERROR " in x)
    if args.keep:
        out["kept"] = work
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 0 if "error" not in out else 1

if __name__ == "__main__":
    sys.exit(main())
