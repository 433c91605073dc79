#!/usr/bin/python3
"""tools/bench.py - `make bench`: runnel beside Apache Kafka 4.4 and librdkafka's
mock cluster, on this machine, in one run, with the machine's own limits.

    BENCH_SCALE=1 /usr/bin/python3 tools/bench.py     (what `make bench` runs)
    /usr/bin/python3 tools/bench.py --render build/bench.json
                                                      (the table again, from a run's figures)

It measures the machine first (loopback TCP bandwidth of a plain socket pump,
durable sequential write bandwidth of the data directory's disk, fdatasync
rate and latency at log-like sizes), then starts each broker in turn on
127.0.0.1 with its data in a fresh temporary directory, runs the same
workloads against it with the same load generator (build/bench_rdkafka, a
librdkafka driver), stops it, and removes its data:

    runnel        build/runnel, its defaults (acks=all waits for fdatasync)
    kafka         Apache Kafka 4.4.0, KRaft combined mode, one node, its
                  defaults, the JVM flags of kafka-server-start.sh
    kafka-fsync   the same with log.flush.interval.messages=1, so that an
                  acknowledged write is on disk as it is with runnel
    mock          librdkafka's in-memory mock cluster (build/bench_mock): no
                  disk, a ceiling for in-memory paths

Per workload it records the broker's CPU seconds (utime + stime of the whole
process, /proc/PID/stat) and resident set size (/proc/PID/status); per broker
the time from exec to the first answered Metadata request. It prints one
table and writes it to build/bench.md, with every raw figure in
build/bench.json.

Environment:
    BENCH_SCALE    multiplies every count and duration (default 1: about 11
                   minutes on 2 cores; 0.1 about 4 minutes for the four brokers)
    BENCH_BROKERS  comma-separated subset of runnel,kafka,kafka-fsync,mock
    BENCH_DIR      where the temporary data directories go (default: $TMPDIR
                   or /tmp); the disk limits are measured there
    BENCH_OUT      output prefix (default build/bench: .md and .json)
    BENCH_PARTITIONS  partition counts of the scale workload (default
                   1,100,1000,10000; 10000 only from BENCH_SCALE 0.5 up)
    BENCH_IDLE_CONNECTIONS  idle connections to hold (default 10000 x scale)

Benchmarks are not tests: nothing here asserts a figure. A broker that dies
or fails a workload is reported (with its log kept under build/bench-logs/)
and the run goes on with the next broker.
"""

import datetime
import importlib.machinery
import importlib.util
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "build")
DRIVER = os.path.join(BUILD, "bench_rdkafka")
MOCK = os.path.join(BUILD, "bench_mock")
LIMITS = os.path.join(BUILD, "bench_limits")
RUNNEL = os.environ.get("RUNNEL", os.path.join(BUILD, "runnel"))
REFERENCE_BROKER = os.path.join(REPO, "compat-tests", "kafka", "reference-broker")
LOG_DIR = os.path.join(BUILD, "bench-logs")

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ALL_BROKERS = ["runnel", "kafka", "kafka-fsync", "mock"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60
SYNC_TIMEOUT_S = 120


def scaled(value, minimum):
    return max(minimum, value * SCALE)


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# ---- /proc ---------------------------------------------------------------


def proc_cpu_s(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_s():
    """CPU seconds every CPU of the machine has been busy (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


PF_KTHREAD = 0x00200000


def other_processes_cpu_s(exclude):
    """CPU seconds of every user-space process but the excluded pids and their
    descendants, children they have reaped included (utime + stime + cutime +
    cstime): what other users of a shared machine are taking. Kernel threads
    (writeback, softirq) are left out: they work for the broker too."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), int(fields[6]), sum(int(x) for x in fields[11:15]))
    skip = set(exclude)
    for _ in range(64):         # descendants, to any depth the tree has
        more = {pid for pid, (ppid, _, _) in stats.items() if ppid in skip and pid not in skip}
        if not more:
            break
        skip |= more
    return sum(t for pid, (_, flags, t) in stats.items() if pid not in skip and not flags & PF_KTHREAD) / CLK_TCK


def own_cpu_s():
    """CPU seconds of this script and of the drivers it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


class RssSampler:
    """Peak VmRSS of a process over a stretch of time, sampled every 50 ms
    (VmHWM only ever grows, so a workload's own peak needs sampling)."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        for _ in range(200000):
            try:
                self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))
            except OSError:
                return
            if self.stop.wait(0.05):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        try:
            self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS"))
        except OSError:
            pass


# ---- raw Kafka requests (probe, idle connections) ---------------------------


def encode_request(api_key, version, correlation_id, body):
    client = b"runnel-bench"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


METADATA_V1_ALL = encode_request(3, 1, 1, struct.pack(">i", -1))
API_VERSIONS_V0 = encode_request(18, 0, 7, b"")


def recv_frame(sock, deadline):
    data = b""
    need = 4
    while len(data) < need:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
        if len(data) >= 4 and need == 4:
            need = 4 + struct.unpack(">i", data[:4])[0]
    return data[4:need]


def probe_metadata(host, port, timeout_s=1.0):
    """True when the broker answers a Metadata v1 request listing a broker."""
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(METADATA_V1_ALL)
            frame = recv_frame(s, deadline)
            correlation_id, broker_count = struct.unpack(">ii", frame[:8])
            return correlation_id == 1 and broker_count >= 1
    except (OSError, ConnectionError, struct.error):
        return False


def wait_first_request(host, port, t0, proc, timeout_s=START_TIMEOUT_S):
    """Seconds from t0 to the first answered Metadata request."""
    deadline = t0 + timeout_s
    for _ in range(1000000):
        if proc.poll() is not None:
            raise RuntimeError("exited with status %s while starting" % proc.returncode)
        if probe_metadata(host, port):
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise RuntimeError("no answer to Metadata within %d s" % timeout_s)
        time.sleep(0.002)
    raise RuntimeError("no answer to Metadata")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Below the brokers' listen backlog (socket.listen.backlog.size, 50 in Kafka
# and runnel): a full accept queue drops SYNs, and a dropped SYN costs a
# second before the kernel retries.
IDLE_BATCH = 40


def open_idle_connections(host, port, count, timeout_s, stall_s=5.0):
    """Opens up to count connections, each answered one ApiVersions v0
    request, in batches of IDLE_BATCH. Returns (sockets, error): it stops early, with
    what it holds and why, when the broker stops accepting or answering for
    stall_s, or at timeout_s. The caller closes the sockets."""
    socks = []
    error = ""
    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    try:
        while len(socks) < count and not error:
            if time.monotonic() > deadline:
                error = "timed out after %d s" % timeout_s
                break
            batch = []
            for _ in range(min(IDLE_BATCH, count - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                # Close with a reset: thousands of TIME_WAITs help nobody.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.settimeout(stall_s)
                try:
                    s.connect((host, port))
                    s.sendall(API_VERSIONS_V0)
                except OSError as e:
                    s.close()
                    error = "connection %d: %s" % (len(socks) + len(batch) + 1, e)
                    break
                s.setblocking(False)
                batch.append(s)
                sel.register(s, selectors.EVENT_READ, [b""])
            pending = set(batch)
            last_progress = time.monotonic()
            while pending and not error:
                if time.monotonic() - last_progress > stall_s:
                    error = "%d ApiVersions unanswered for %.0f s" % (len(pending), stall_s)
                    break
                for key, _ in sel.select(timeout=0.2):
                    buf = key.data
                    try:
                        chunk = key.fileobj.recv(65536)
                    except OSError as e:
                        chunk = b""
                        error = "recv: %s" % e
                    if not chunk:
                        error = error or "the broker closed a new connection"
                        break
                    buf[0] += chunk
                    if len(buf[0]) >= 4 and len(buf[0]) >= 4 + struct.unpack(">i", buf[0][:4])[0]:
                        sel.unregister(key.fileobj)
                        pending.discard(key.fileobj)
                        socks.append(key.fileobj)
                        last_progress = time.monotonic()
            for s in pending:
                sel.unregister(s)
                s.close()
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()
    return socks, error


# ---- brokers ---------------------------------------------------------------


class Broker:
    name = "?"
    label = "?"

    def __init__(self, base_dir):
        self.dir = tempfile.mkdtemp(prefix="%s-" % self.name, dir=base_dir)
        self.proc = None
        self.host = "127.0.0.1"
        self.port = None
        self.start_s = None
        self.log_path = os.path.join(LOG_DIR, "%s.log" % self.name)
        self.log_file = None

    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def pid(self):
        return self.proc.pid

    def is_alive(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, argv, **kw):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.log_file = open(self.log_path, "wb")
        return subprocess.Popen(argv, stdout=kw.pop("stdout", self.log_file), stderr=self.log_file,
                                cwd=self.dir, start_new_session=True, **kw)

    def create_topic(self, topic, partitions):
        res = run_driver(["create", "-b", self.bootstrap, "-t", topic, "-p", str(partitions)],
                         timeout_s=max(60, partitions / 20))
        if not res.get("ok"):
            raise RuntimeError("cannot create %s with %d partitions: %s" % (topic, partitions, res))
        return res

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log("%s did not stop in %d s after SIGTERM; SIGKILL" % (self.name, STOP_TIMEOUT_S))
                self.proc.kill()
                self.proc.wait(10)
        if self.log_file:
            self.log_file.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def last_log_line(self, word, tail_bytes=1 << 20):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - tail_bytes))
                for line in reversed(f.read().decode(errors="replace").splitlines()):
                    if word in line:
                        return line
        except OSError:
            pass
        return ""

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


class Runnel(Broker):
    name = "runnel"
    label = "runnel"

    def start(self):
        # Port 0: runnel binds with SO_REUSEPORT, so a fixed port that another
        # runnel holds would be shared silently; port 0 cannot collide. The
        # port is read from its start-up line.
        argv = [RUNNEL, "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                "--override", "log.dirs=" + os.path.join(self.dir, "data")]
        t0 = time.monotonic()
        self.proc = self.spawn(argv)
        deadline = t0 + START_TIMEOUT_S
        for _ in range(1000000):
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            marker = "listening on 127.0.0.1:"
            if marker in text:
                self.port = int(text.split(marker, 1)[1].split(",")[0].split()[0])
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("runnel did not start: " + self.log_tail())
            time.sleep(0.001)
        self.start_s = wait_first_request(self.host, self.port, t0, self.proc)


def load_reference_broker():
    loader = importlib.machinery.SourceFileLoader("reference_broker", REFERENCE_BROKER)
    spec = importlib.util.spec_from_loader("reference_broker", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Kafka(Broker):
    """Apache Kafka 4.4.0 as compat-tests/kafka/reference-broker starts it
    (its defaults and log4j2 config), but with the JVM flags of
    kafka-server-start.sh / kafka-run-class.sh, and with the storage format
    done before the clock starts."""

    name = "kafka"
    label = "Kafka"
    overrides = {}

    def start(self):
        ref = load_reference_broker()
        if not os.path.isfile(os.path.join(ref.LIB, "kafka_2.13-4.4.0.jar")):
            raise RuntimeError("no Kafka jars in %s (bash tools/deps.sh compat)" % ref.LIB)
        props = dict(ref.DEFAULTS)
        self.port = free_port()
        controller_port = free_port()
        while controller_port == self.port:
            controller_port = free_port()
        props["listeners"] = "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (self.port, controller_port)
        props["advertised.listeners"] = "PLAINTEXT://127.0.0.1:%d" % self.port
        props["controller.quorum.voters"] = "%s@127.0.0.1:%d" % (props["node.id"], controller_port)
        props["log.dirs"] = os.path.join(self.dir, "data")
        props.update(self.overrides)
        config = os.path.join(self.dir, "server.properties")
        with open(config, "w") as f:
            for key in sorted(props):
                f.write("%s=%s\n" % (key, props[key]))
        log4j = os.path.join(self.dir, "log4j2.properties")
        with open(log4j, "w") as f:
            f.write(ref.LOG4J2)
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
        cp = os.path.join(ref.LIB, "*")
        # KAFKA_HEAP_OPTS of kafka-server-start.sh, KAFKA_JVM_PERFORMANCE_OPTS,
        # the GC log of -loggc and KAFKA_JMX_OPTS of kafka-run-class.sh.
        jvm = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
               "-Xlog:gc*:file=%s:time,tags:filecount=10,filesize=100M" % os.path.join(self.dir, "kafkaServer-gc.log"),
               "-Dcom.sun.management.jmxremote", "-Dcom.sun.management.jmxremote.authenticate=false",
               "-Dcom.sun.management.jmxremote.ssl=false",
               "-Dlog4j2.configurationFile=" + log4j, "-Dkafka.logs.dir=" + self.dir]
        cluster_id = ref.base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        fmt = subprocess.run([java, "-cp", cp, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                              "-t", cluster_id, "-c", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=START_TIMEOUT_S)
        if fmt.returncode != 0:
            raise RuntimeError("kafka-storage format failed: " + fmt.stdout.decode(errors="replace")[-2000:])
        t0 = time.monotonic()
        self.proc = self.spawn([java] + jvm + ["-cp", cp, "kafka.Kafka", config])
        self.start_s = wait_first_request(self.host, self.port, t0, self.proc)


class KafkaFsync(Kafka):
    name = "kafka-fsync"
    label = "Kafka (fsync)"
    overrides = {"log.flush.interval.messages": "1"}


class Mock(Broker):
    name = "mock"
    label = "mock"

    def start(self):
        t0 = time.monotonic()
        self.proc = self.spawn([MOCK], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.read_line(START_TIMEOUT_S)
        if not line.startswith("bootstrap "):
            raise RuntimeError("bench_mock said %r" % line)
        self.host, port = line.split()[1].split(",")[0].rsplit(":", 1)
        self.port = int(port)
        self.start_s = wait_first_request(self.host, self.port, t0, self.proc)

    def read_line(self, timeout_s):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout_s):
                raise RuntimeError("bench_mock did not answer in %d s" % timeout_s)
        finally:
            sel.close()
        return self.proc.stdout.readline().decode().strip()

    def create_topic(self, topic, partitions):
        t0 = time.monotonic()
        self.proc.stdin.write(("create %s %d\n" % (topic, partitions)).encode())
        self.proc.stdin.flush()
        answer = self.read_line(60)
        if answer != "ok":
            raise RuntimeError("bench_mock create %s: %s" % (topic, answer))
        return {"ok": True, "ready_s": time.monotonic() - t0}

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().stop()


BROKER_CLASSES = {"runnel": Runnel, "kafka": Kafka, "kafka-fsync": KafkaFsync, "mock": Mock}


# ---- the driver ------------------------------------------------------------


def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def run_driver(args, timeout_s):
    """Runs bench_rdkafka; its JSON, or {"ok": False, "error": ...}."""
    try:
        p = subprocess.run([DRIVER] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        return {"ok": False, "error": "driver timed out after %d s" % timeout_s,
                "stderr": (e.stderr or b"").decode(errors="replace")[-2000:]}
    res = last_json(p.stdout.decode(errors="replace"))
    if res is None:
        res = {"ok": False, "error": "driver exited %d without figures" % p.returncode}
    if not res.get("ok"):
        res["stderr"] = p.stderr.decode(errors="replace")[-2000:]
        if not res.get("error"):
            res["error"] = "%s of %s messages failed, %s undelivered%s" % (
                res.get("failed", "?"), res.get("sent", "?"), res.get("undelivered", "?"),
                (" (%s)" % res["first_error"]) if res.get("first_error") else "")
    res["argv"] = " ".join(["bench_rdkafka"] + args)
    return res


def run_drivers_parallel(arg_lists, timeout_s):
    procs = [subprocess.Popen([DRIVER] + a, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in arg_lists]
    out = []
    deadline = time.monotonic() + timeout_s
    for p, a in zip(procs, arg_lists):
        try:
            so, se = p.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
        res = last_json(so.decode(errors="replace")) or {"ok": False, "error": "no figures"}
        if not res.get("ok"):
            res["stderr"] = se.decode(errors="replace")[-2000:]
        res["argv"] = " ".join(["bench_rdkafka"] + a)
        out.append(res)
    return out


def settle():
    """Write back what the previous workload left dirty, so its writeback
    does not land on the next workload's clock (same for every broker)."""
    t0 = time.monotonic()
    try:
        subprocess.run(["sync"], timeout=SYNC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log("sync took over %d s" % SYNC_TIMEOUT_S)
    return time.monotonic() - t0


# ---- workloads -------------------------------------------------------------


class Plan:
    """Counts and durations of every workload at this BENCH_SCALE."""

    def __init__(self):
        self.produce_s = scaled(8, 1.0)
        self.produce_count = {1024: int(scaled(1500000, 2000)), 100: int(scaled(6000000, 20000))}
        self.consume_s = scaled(30, 3.0)
        self.latency_rate = 10000
        self.latency_s = scaled(15, 3.0)
        self.latency_warmup_s = min(2.0, self.latency_s / 4)
        self.warmup_s = scaled(10, 0.5)
        self.scale_s = scaled(8, 1.0)
        self.scale_count = int(scaled(1000000, 5000))
        default_parts = "1,100,1000,10000" if SCALE >= 0.5 else ("1,100,1000" if SCALE >= 0.05 else "1,100")
        self.partitions = [int(x) for x in os.environ.get("BENCH_PARTITIONS", default_parts).split(",")]
        self.idle_connections = int(os.environ.get("BENCH_IDLE_CONNECTIONS", int(scaled(10000, 50))))
        self.mock_min_bytes = int(scaled(200e6, 5e6))

    def as_dict(self):
        return dict(self.__dict__, scale=SCALE)


PRODUCE_WORKLOADS = [(size, acks, parts) for size in (1024, 100) for acks in ("1", "all") for parts in (1, 8)]


def produce_id(size, acks, parts):
    return "produce-%s-acks%s-p%d" % ("1k" if size == 1024 else "%db" % size, acks, parts)


def produce_title(size, acks, parts):
    return "produce %s, acks=%s, %d partition%s" % ("1 KiB" if size == 1024 else "%d B" % size, acks, parts,
                                                    "" if parts == 1 else "s")


class Session:
    """One broker's run: every workload, with the broker's cost of each."""

    def __init__(self, broker, plan):
        self.b = broker
        self.plan = plan
        self.results = {"label": broker.label, "workloads": {}, "failures": [], "crashed": None}

    def measure(self, wid, fn):
        """Runs fn() -> dict of figures; adds CPU seconds and RSS of the broker."""
        if not self.b.is_alive():
            return None
        settle()
        pid = self.b.pid
        cpu0 = proc_cpu_s(pid)
        busy0, own0 = system_busy_s(), own_cpu_s()
        others0 = other_processes_cpu_s([os.getpid(), pid])
        t0 = time.monotonic()
        with RssSampler(pid) as rss:
            try:
                res = fn()
            except Exception as e:  # noqa: BLE001 - a failed workload is a figure too
                res = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        wall = time.monotonic() - t0
        res["wall_s"] = round(wall, 3)
        if self.b.is_alive():
            res["broker_cpu_s"] = round(proc_cpu_s(pid) - cpu0, 3)
            # What the rest of the machine took meanwhile: other users' processes
            # (a shared box), and kernel threads (writeback, softirq: partly
            # the broker's own work, done on its behalf).
            others = other_processes_cpu_s([os.getpid(), pid]) - others0
            kernel = system_busy_s() - busy0 - (own_cpu_s() - own0) - res["broker_cpu_s"] - others
            res["others_cores"] = round(max(0.0, others) / wall, 2) if wall > 0 else None
            res["kernel_threads_cores"] = round(max(0.0, kernel) / wall, 2) if wall > 0 else None
            res["loadavg"] = os.getloadavg()[0]
            res["broker_rss_peak_kib"] = rss.peak_kib
            res["broker_rss_after_kib"] = proc_status_kib(pid, "VmRSS")
            res["broker_fds_after"] = proc_fd_count(pid)
            moved = res.get("bytes_moved")
            if moved:
                res["broker_cpu_s_per_gb"] = round(res["broker_cpu_s"] / (moved / 1e9), 3)
        else:
            self.results["crashed"] = {"workload": wid, "status": self.b.proc.returncode,
                                       "log_tail": self.b.log_tail(60), "log": self.b.log_path}
            res["ok"] = False
            res["error"] = "broker exited with status %s during this workload" % self.b.proc.returncode
            log("%s CRASHED during %s (status %s); log: %s" % (self.b.name, wid, self.b.proc.returncode,
                                                               self.b.log_path))
        if not res.get("ok"):
            detail = res.get("stderr", "")[-1500:]
            last = self.b.last_log_line("ERROR")
            if last:
                res["broker_last_error"] = last
                detail += "\nlast ERROR line of the broker's log (%s):\n%s" % (self.b.log_path, last[:600])
            self.results["failures"].append({"workload": wid, "error": res.get("error", ""), "detail": detail})
            log("%s %s FAILED: %s %s" % (self.b.name, wid, res.get("error", ""), res.get("stderr", "")[-300:]))
        self.results["workloads"][wid] = res
        log("%s %-28s %s" % (self.b.name, wid, summary(res)))
        return res

    def consumer_args(self):
        # The mock holds an empty fetch for the whole fetch.wait.max.ms instead
        # of answering when data arrives; a short wait keeps it from stalling.
        return ["-X", "fetch.wait.max.ms=10"] if self.b.name == "mock" else []

    def produce(self, topic, size, acks, parts, seconds, count, round_robin=False, linger_ms=5):
        args = ["produce", "-b", self.b.bootstrap, "-t", topic, "-s", str(size), "-n", str(count),
                "-d", "%.2f" % seconds, "-a", acks, "-l", str(linger_ms)]
        if round_robin:
            args += ["-p", str(parts)]
        res = run_driver(args, timeout_s=seconds + 180)
        res["bytes_moved"] = res.get("bytes", 0)
        return res

    def consume(self, topic, parts, readers=1):
        args = ["consume", "-b", self.b.bootstrap, "-t", topic, "-p", str(parts), "-d", "%.2f" % self.plan.consume_s]
        if self.b.name == "mock":
            args += ["-m", str(self.plan.mock_min_bytes)]
        args += self.consumer_args()
        if readers == 1:
            res = run_driver(args, timeout_s=self.plan.consume_s + 60)
            res["bytes_moved"] = res.get("bytes", 0)
            return res
        parts_res = run_drivers_parallel([args] * readers, timeout_s=self.plan.consume_s + 60)
        total = sum(r.get("bytes", 0) for r in parts_res)
        active = max(r.get("active_s", 0) for r in parts_res) or 1e-9
        return {"ok": all(r.get("ok") for r in parts_res), "readers": parts_res, "bytes": total,
                "bytes_moved": total, "messages": sum(r.get("messages", 0) for r in parts_res),
                "mb_per_s": total / 1e6 / active, "active_s": active,
                "error": "; ".join(r.get("error", "") for r in parts_res if not r.get("ok"))}

    def run(self):
        p = self.plan
        b = self.b
        # Idle connections first, on a broker that has served nothing yet:
        # later, memory freed by earlier workloads would hide their cost.
        self.measure("idle-connections", self.idle)
        # Warm-up, for every broker alike: the JVM compiles its hot paths.
        self.measure("warmup", lambda: self.warmup())

        for size, acks, parts in PRODUCE_WORKLOADS:
            wid = produce_id(size, acks, parts)
            topic = wid

            try:
                b.create_topic(topic, parts)
            except Exception as e:  # noqa: BLE001 - the workload reports it
                log("%s: %s" % (b.name, e))
            self.measure(wid, lambda size=size, acks=acks, parts=parts, topic=topic:
                         self.produce(topic, size, acks, parts, p.produce_s, p.produce_count[size]))

        self.results["rss_hwm_throughput_kib"] = self.hwm()
        for parts, readers in ((1, 1), (8, 1), (8, 3)):
            topic = produce_id(1024, "1", parts)
            wid = "consume-p%d-x%d" % (parts, readers)
            self.measure(wid, lambda topic=topic, parts=parts, readers=readers: self.consume(topic, parts, readers))

        self.measure("latency", self.latency)
        self.measure("latency-linger5", lambda: self.latency(linger_ms=5))
        self.results["rss_hwm_before_scale_kib"] = self.hwm()

        for parts in p.partitions:
            wid = "scale-p%d" % parts

            def scale_work(parts=parts, wid=wid):
                rss_before = proc_status_kib(b.pid, "VmRSS")
                fds_before = proc_fd_count(b.pid)
                created = b.create_topic(wid, parts)
                res = self.produce(wid, 1024, "1", parts, p.scale_s, p.scale_count, round_robin=True)
                res["topic_ready_s"] = created.get("ready_s")
                res["rss_before_kib"] = rss_before
                res["fds_before"] = fds_before
                return res
            self.measure(wid, scale_work)
        self.results["rss_hwm_kib"] = self.hwm()

    def hwm(self):
        return proc_status_kib(self.b.pid, "VmHWM") if self.b.is_alive() else None

    def warmup(self):
        self.b.create_topic("warmup", 1)
        res = self.produce("warmup", 1024, "1", 1, self.plan.warmup_s, int(scaled(1500000, 5000)))
        res["consume"] = run_driver(["consume", "-b", self.b.bootstrap, "-t", "warmup", "-p", "1", "-d", "20"]
                                    + self.consumer_args(), timeout_s=60)
        res["bytes_moved"] = res.get("bytes", 0) + res["consume"].get("bytes", 0)
        return res

    def latency(self, linger_ms=0):
        p = self.plan
        topic = "latency-linger%d" % linger_ms
        self.b.create_topic(topic, 1)
        args = ["latency", "-b", self.b.bootstrap, "-t", topic, "-s", "1024", "-r", str(p.latency_rate),
                "-d", "%.2f" % p.latency_s, "-a", "all", "-l", str(linger_ms), "-w", "%.2f" % p.latency_warmup_s]
        res = run_driver(args + self.consumer_args(), timeout_s=p.latency_s + 240)
        res["bytes_moved"] = res.get("delivered", 0) * 1024 * 2
        return res

    def idle(self):
        n = self.plan.idle_connections
        pid = self.b.pid
        time.sleep(0.5)
        rss0 = proc_status_kib(pid, "VmRSS")
        fds0 = proc_fd_count(pid)
        t0 = time.monotonic()
        socks, error = open_idle_connections(self.b.host, self.b.port, n, timeout_s=scaled(45, 15))
        try:
            open_s = time.monotonic() - t0
            time.sleep(1.0)
            rss1 = proc_status_kib(pid, "VmRSS")
            fds1 = proc_fd_count(pid)
            served = probe_metadata(self.b.host, self.b.port, timeout_s=10)
        finally:
            for s in socks:
                s.close()
        if not served:
            error = (error + "; " if error else "") + "no Metadata answer while the connections were held"
        # The broker must hold them, not just the kernel's accept queue.
        if fds1 - fds0 < 0.9 * len(socks):
            error = (error + "; " if error else "") + "the broker holds only %d more descriptors" % (fds1 - fds0)
        return {"ok": not error, "connections": len(socks), "asked": n, "open_s": round(open_s, 3),
                "rss_before_kib": rss0, "rss_held_kib": rss1, "broker_fds_before": fds0, "broker_fds_held": fds1,
                "bytes_per_connection": (rss1 - rss0) * 1024 / max(1, len(socks)),
                "served_while_held": served, "error": error}


def summary(res):
    if res is None:
        return "skipped"
    if "mb_per_s" in res and "msgs_per_s" in res:
        s = "%.1f MB/s %.0f msg/s" % (res["mb_per_s"], res["msgs_per_s"])
    elif "e2e" in res:
        s = "e2e p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms" % tuple(
            res["e2e"][k] for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))
    elif "connections" in res:
        s = "%d conns, %.0f B/conn" % (res["connections"], res["bytes_per_connection"])
    elif "mb_per_s" in res:
        s = "%.1f MB/s" % res["mb_per_s"]
    else:
        s = ""
    if "broker_cpu_s_per_gb" in res:
        s += ", cpu %.2f s/GB" % res["broker_cpu_s_per_gb"]
    if "broker_rss_peak_kib" in res:
        s += ", rss %.0f MiB" % (res["broker_rss_peak_kib"] / 1024)
    if res.get("others_cores") is not None:
        s += ", others %.2f cores, kthreads %.2f" % (res["others_cores"], res.get("kernel_threads_cores") or 0)
    return s + ("" if res.get("ok") else "  [FAILED: %s]" % res.get("error", ""))


# ---- machine limits --------------------------------------------------------


def probe_disk(base_dir):
    """One second of 64 KiB appends + fdatasync: how the shared disk is doing
    right now (taken before and after each broker's workloads)."""
    try:
        p = subprocess.run([LIMITS, "fsync", "-f", base_dir, "-s", "65536", "-n", "20000", "-d", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return last_json(p.stdout.decode()) or {}
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}


def run_limits(base_dir):
    out = {}

    def limit(args, timeout_s):
        try:
            p = subprocess.run([LIMITS] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout_s)
            return last_json(p.stdout.decode()) or {"error": p.stderr.decode()[-500:]}
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}

    log("machine limits: loopback TCP pump")
    out["tcp"] = limit(["tcp", "-d", "%.2f" % scaled(3, 0.5)], 120)
    settle()
    log("machine limits: sequential write + fdatasync in %s" % base_dir)
    out["write"] = limit(["write", "-f", base_dir, "-m", str(int(scaled(2048, 64)))], 300)
    for size in (4096, 65536, 1048576):
        settle()
        log("machine limits: write + fdatasync of %d bytes" % size)
        out["fsync_%d" % size] = limit(["fsync", "-f", base_dir, "-s", str(size), "-n", "100000",
                                        "-d", "%.2f" % scaled(3, 0.5)], 120)
    settle()
    log("machine limits: CPU floor of produce (loopback receive, write into the page cache)")
    out["cpu"] = limit(["cpu", "-f", base_dir, "-m", str(int(scaled(1024, 64)))], 300)
    return out


# ---- the table -------------------------------------------------------------


def fmt_num(v, digits=None):
    if v is None:
        return "—"
    if digits is None:
        digits = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return "{:,.{}f}".format(v, digits)


class Row:
    def __init__(self, title, unit, values, better, limit=None, limit_note="", extras=None):
        self.title = title
        self.extras = extras or {}    # broker name -> a second figure, shown in brackets
        self.unit = unit
        self.values = values          # broker name -> number or None or "FAILED"/"crash"
        self.better = better          # "higher" or "lower"
        self.limit = limit            # the machine limit in the same unit, or None
        self.limit_note = limit_note

    def ratio(self, other):
        a, b = self.values.get("runnel"), self.values.get(other)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            return a / b
        return None

    def as_dict(self):
        return {"workload": self.title, "unit": self.unit, "better": self.better, "values": self.values,
                "runnel_over_kafka": self.ratio("kafka"), "runnel_over_kafka_fsync": self.ratio("kafka-fsync"),
                "limit": self.limit, "limit_note": self.limit_note,
                "runnel_fraction_of_limit": self.fraction()}

    def fraction(self):
        a = self.values.get("runnel")
        if self.limit and isinstance(a, (int, float)):
            return a / self.limit
        return None


def value_of(results, broker, wid, fn):
    r = results.get(broker)
    if r is None:
        return None
    w = r["workloads"].get(wid)
    if w is None:
        return "crash" if r.get("crashed") else None
    try:
        v = fn(w)
    except (KeyError, TypeError, ZeroDivisionError):
        v = None
    if not w.get("ok"):
        return ("%s!" % fmt_num(v)) if isinstance(v, (int, float)) else "FAILED"
    return v


def build_rows(results, limits, brokers):
    rows = []
    tcp = limits.get("tcp", {}).get("mb_per_s")
    # Durable write bandwidth: the better of one long write + fdatasync and
    # 1 MiB appends each fdatasync'd (a virtual disk's cache favours either).
    disk = max([limits.get("write", {}).get("mb_per_s") or 0,
                limits.get("fsync_1048576", {}).get("mb_per_s") or 0]) or None
    fs4 = limits.get("fsync_4096", {})
    floor = limits.get("cpu", {}).get("sum_s_per_gb")

    def row(title, unit, wid, fn, better, limit=None, note="", extra=None):
        extras = {}
        if extra:
            for b in brokers:
                v = value_of(results, b, wid, extra)
                if isinstance(v, (int, float)):
                    extras[b] = "%sk" % fmt_num(v / 1000)
        rows.append(Row(title, unit, {b: value_of(results, b, wid, fn) for b in brokers}, better, limit, note,
                        extras))

    for size, acks, parts in PRODUCE_WORKLOADS:
        wid = produce_id(size, acks, parts)
        if acks == "all" and disk:
            lim, note = min(disk, tcp or disk), "durable disk write %s MB/s" % fmt_num(disk)
        else:
            lim, note = tcp, "loopback %s MB/s" % fmt_num(tcp)
        row(produce_title(size, acks, parts), "MB/s (msg/s)", wid, lambda w: w["mb_per_s"], "higher", lim, note,
            extra=lambda w: w["msgs_per_s"])
    for parts, readers in ((1, 1), (8, 1), (8, 3)):
        wid = "consume-p%d-x%d" % (parts, readers)
        title = "consume from start, %d partition%s, %s" % (parts, "" if parts == 1 else "s",
                                                            "1 consumer" if readers == 1 else "%d consumers" % readers)
        row(title, "MB/s", wid, lambda w: w["mb_per_s"], "higher", tcp, "loopback %s MB/s" % fmt_num(tcp))
    for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")):
        note = ""
        lim = None
        if q in ("p50_ms", "p99_ms") and fs4.get(q):
            lim = fs4[q]
            note = "fdatasync 4 KiB %s %s ms" % (name, fmt_num(fs4[q], 3))
        row("e2e latency, 10,000 msg/s of 1 KiB, acks=all, %s" % name, "ms", "latency",
            lambda w, q=q: w["e2e"][q], "lower", lim, note)
    row("ack latency, same run, p99", "ms", "latency", lambda w: w["ack"]["p99_ms"], "lower")
    for q, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")):
        row("e2e latency, the same with linger.ms=5 (librdkafka's default), %s" % name, "ms", "latency-linger5",
            lambda w, q=q: w["e2e"][q], "lower")
    for wid, title in (("produce-1k-acks1-p8", "produce 1 KiB acks=1 8p"),
                       ("produce-1k-acksall-p8", "produce 1 KiB acks=all 8p"),
                       ("produce-100b-acks1-p8", "produce 100 B acks=1 8p"),
                       ("consume-p8-x1", "consume 8p")):
        lim, note = None, ""
        if wid.startswith("produce-") and floor:
            lim, note = floor, "the CPU floor (receive + write) %s s/GB" % fmt_num(floor)
        row("broker CPU per GB moved, %s" % title, "CPU s/GB", wid, lambda w: w["broker_cpu_s_per_gb"], "lower",
            lim, note)
    agg = {}
    for b in brokers:
        r = results.get(b)
        if not r:
            agg[b] = None
            continue
        cpu = gb = 0.0
        for wid, w in r["workloads"].items():
            if (wid.startswith("produce-") or wid.startswith("consume-")) and w.get("ok") and "broker_cpu_s" in w:
                cpu += w["broker_cpu_s"]
                gb += w.get("bytes_moved", 0) / 1e9
        agg[b] = cpu / gb if gb else None
    rows.append(Row("broker CPU per GB moved, all produce + consume workloads", "CPU s/GB", agg, "lower"))
    rows.append(Row("peak RSS, produce workloads (VmHWM)", "MiB",
                    {b: (results[b].get("rss_hwm_throughput_kib") or 0) / 1024 or None if b in results else None
                     for b in brokers}, "lower"))
    rows.append(Row("peak RSS, whole run incl. scale + idle (VmHWM)", "MiB",
                    {b: (results[b].get("rss_hwm_kib") or 0) / 1024 or None if b in results else None
                     for b in brokers}, "lower"))
    rows.append(Row("start to first answered Metadata request", "ms",
                    {b: results[b]["start_s"] * 1000 if b in results and results[b].get("start_s") else None
                     for b in brokers}, "lower"))
    for parts in results_partitions(results):
        wid = "scale-p%d" % parts
        row("scale: produce 1 KiB acks=1 round-robin over %d partition%s" % (parts, "" if parts == 1 else "s"),
            "MB/s", wid, lambda w: w["mb_per_s"], "higher", tcp, "loopback %s MB/s" % fmt_num(tcp))
        row("scale: topic of %d partitions created and led" % parts, "ms", wid,
            lambda w: w["topic_ready_s"] * 1000, "lower")
        row("scale: RSS after producing to %d partitions" % parts, "MiB", wid,
            lambda w: w["broker_rss_after_kib"] / 1024, "lower")
    for parts in [x for x in results_partitions(results) if x >= 100]:
        rss_vals, fd_vals = {}, {}
        for b in brokers:
            r = results.get(b)
            w = r["workloads"].get("scale-p%d" % parts) if r else None
            rss_vals[b] = fd_vals[b] = None
            if not w:
                continue
            if "rss_before_kib" in w and "broker_rss_after_kib" in w:
                v = (w["broker_rss_after_kib"] - w["rss_before_kib"]) * 1024 / parts
                rss_vals[b] = v if w.get("ok") else "%s!" % fmt_num(v)
            if w.get("broker_fds_after", -1) >= 0 and w.get("fds_before", -1) >= 0:
                v = (w["broker_fds_after"] - w["fds_before"]) / parts
                fd_vals[b] = v if w.get("ok") else "%s!" % fmt_num(v)
        rows.append(Row("scale: RSS growth per partition (%d-partition topic)" % parts, "bytes", rss_vals, "lower"))
        rows.append(Row("scale: open file descriptors per partition (%d-partition topic)" % parts, "fds", fd_vals,
                        "lower", None, "open-files limit %s" % info_nofile(results)))
    n = None
    for b in brokers:
        w = results.get(b, {}).get("workloads", {}).get("idle-connections") if results.get(b) else None
        if w and "asked" in w:
            n = w["asked"]
    row("idle connections held (%s asked)" % fmt_num(n), "connections", "idle-connections",
        lambda w: w["connections"], "higher")
    row("RSS per idle connection", "bytes", "idle-connections", lambda w: w["bytes_per_connection"], "lower")
    return rows


def info_nofile(results):
    for r in results.values():
        if r.get("rlimit_nofile"):
            return r["rlimit_nofile"]
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def results_partitions(results):
    seen = set()
    for r in results.values():
        for wid in r["workloads"]:
            if wid.startswith("scale-p"):
                seen.add(int(wid[7:]))
    return sorted(seen)


def render_table(rows, brokers):
    labels = {b: BROKER_CLASSES[b].label for b in brokers}
    head = ["workload", "unit"] + [labels[b] for b in brokers]
    if "kafka" in brokers:
        head.append("runnel/Kafka")
    if "kafka-fsync" in brokers:
        head.append("runnel/Kafka (fsync)")
    head.append("runnel vs machine limit")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        cells = [r.title, r.unit]
        for b in brokers:
            v = r.values.get(b)
            cell = fmt_num(v) if isinstance(v, (int, float)) else (v or "—")
            if b in r.extras:
                cell += " (%s)" % r.extras[b]
            cells.append(cell)
        for other in ("kafka", "kafka-fsync"):
            if other in brokers:
                x = r.ratio(other)
                cells.append(("%.2f×" % x if x >= 0.1 else "%.3f×" % x) if x is not None else "—")
        f = r.fraction()
        if f is not None and r.unit not in ("ms", "CPU s/GB"):
            cells.append("%.0f%% of %s" % (f * 100, r.limit_note))
        elif f is not None:
            cells.append("%.1f× %s" % (f, r.limit_note))
        else:
            cells.append(r.limit_note or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_limits(limits):
    out = []
    t = limits.get("tcp", {})
    if "mb_per_s" in t:
        out.append("- loopback TCP, one stream, plain socket pump (256 KiB writes): %s MB/s" % fmt_num(t["mb_per_s"]))
    w = limits.get("write", {})
    if "mb_per_s" in w:
        out.append("- sequential write of %d MiB + fdatasync in the data directory: %s MB/s "
                   "(into the page cache alone: %s MB/s)" % (w["bytes"] >> 20, fmt_num(w["mb_per_s"]),
                                                            fmt_num(w["page_cache_mb_per_s"])))
    for size in (4096, 65536, 1048576):
        f = limits.get("fsync_%d" % size, {})
        if "per_s" in f:
            out.append("- append %d B + fdatasync: %s/s, p50 %s ms, p99 %s ms, max %s ms" % (
                size, fmt_num(f["per_s"]), fmt_num(f["p50_ms"], 3), fmt_num(f["p99_ms"], 3), fmt_num(f["max_ms"], 3)))
    c = limits.get("cpu", {})
    if "sum_s_per_gb" in c:
        out.append("- CPU floor of produce, per GB: receiving a loopback TCP stream into a 1 MiB buffer %s s "
                   "(the receiving process alone), write() of the same bytes into the page cache of the data "
                   "directory %s s; together %s s, what a broker that only received and wrote its produced bytes "
                   "would spend (%d MiB each)" % (fmt_num(c["receive_s_per_gb"], 3), fmt_num(c["write_s_per_gb"], 3),
                                                 fmt_num(c["sum_s_per_gb"], 3), c["bytes"] >> 20))
    return "\n".join(out)


def render_noise(results, brokers):
    """How busy the rest of the machine was while each broker was measured."""
    out = []
    for b in brokers:
        ws = [(wid, w) for wid, w in results.get(b, {}).get("workloads", {}).items()
              if w.get("others_cores") is not None and w.get("wall_s")]
        if not ws:
            continue
        wall = sum(w["wall_s"] for _, w in ws)
        mean = sum(w["others_cores"] * w["wall_s"] for _, w in ws) / wall
        wid, worst = max(ws, key=lambda x: x[1]["others_cores"])
        kernel = sum((w.get("kernel_threads_cores") or 0) * w["wall_s"] for _, w in ws) / wall
        disk = ""
        d0, d1 = results[b].get("disk_before") or {}, results[b].get("disk_after") or {}
        if "p50_ms" in d0 and "p50_ms" in d1:
            disk = "; the disk's 64 KiB append + fdatasync p50/p99 was %s/%s ms before, %s/%s ms after" % (
                fmt_num(d0["p50_ms"], 3), fmt_num(d0["p99_ms"], 3), fmt_num(d1["p50_ms"], 3), fmt_num(d1["p99_ms"], 3))
        out.append("- %s: other users' processes took %.2f cores on average over its workloads, at most %.2f "
                   "(during %s); kernel threads %.2f cores on average%s" % (
                       BROKER_CLASSES[b].label, mean, worst["others_cores"], wid, kernel, disk))
    return "\n".join(out)


def machine_info():
    info = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        info["java"] = subprocess.run(["java", "-version"], stderr=subprocess.PIPE, timeout=30).stderr.decode() \
            .splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    try:
        rk = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "librdkafka1"], stdout=subprocess.PIPE,
                            timeout=10).stdout.decode()
        info["librdkafka"] = rk
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        info["runnel_commit"] = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                               stdout=subprocess.PIPE, timeout=10).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


NOTES = """\
Notes on reading it:

- Every broker ran alone on this machine, one after another, with the same
  load generator (build/bench_rdkafka, librdkafka {librdkafka}) on the same
  {cpus} cores: broker and clients share the CPUs, so a figure is what the
  pair reaches, and the client binds first where it saturates a core.
- Throughput: key + value bytes per second (MB = 10^6 bytes) from the first
  send to the last acknowledgement; each workload stops at its count or its
  duration bound, whichever comes first. Produce: linger.ms=5, librdkafka's
  batch.size (1 MB), no compression, keyless (sticky partitioner). Consume:
  partitions assigned (no group) from the start of a topic written by the
  acks=1 produce workload, timed from the first to the last message (JSON
  also has wall time including the first fetch).
- "3 consumers": three independent readers (as three consumer groups would
  be), each assigned all 8 partitions; the figure is their bytes together
  over the longest one's time.
- Before each workload `sync` writes back what the previous one left dirty,
  so writeback of one workload does not land on the next one's clock.
- Warm-up: before the measured workloads every broker gets the same short
  produce + consume run ("warmup" in the JSON), so the JVM has compiled its
  hot paths; Kafka's JIT still improves over the run, so its early workloads
  may read a little low. Kafka's start time is the JVM's start plus the
  broker's; the storage format step (a separate JVM run) is excluded.
- acks=all: runnel acknowledges after fdatasync (group commit); Kafka
  (default) after the write to the page cache; Kafka (fsync) flushes the log
  after every append (log.flush.interval.messages=1).
- Latency: one producer paced at the offered rate (linger.ms=0, so every
  message is a produce request of its own unless some are already queued;
  then again with linger.ms=5, acks=all both),
  one consumer assigned at the log end, in one process; each value carries
  the time it was due to be sent, so stalls count against the broker
  (no coordinated omission). The first {lat_warmup:.0f} s are not counted.
- Idle connections: each one connected and answered one ApiVersions
  request, then held; the broker's descriptor count confirms it holds them.
  RSS is user-space memory only: kernel socket buffers are in no broker's
  RSS. RSS growth per partition: from before the topic was created to after
  the produce workload wrote to every partition.
- CPU per GB: the broker process's utime + stime (all threads, /proc) over the
  workload, per 10^9 bytes produced or consumed. For produce it is set beside
  the CPU floor of the machine limits (receive + write into the page cache,
  both in the kernel): a broker cannot take its bytes off a socket and into
  files for less, whatever it does in user space, so what a produce row
  spends above the floor is the broker's own (validation with CRC-32C,
  framing, I/O submission, wake-ups) and what it spends up to it is the
  kernel's copies. On this shared virtual machine the page-cache half varies
  from run to run by up to several times (perf puts the time in the kernel's
  copy into newly allocated page-cache pages, likely the host backing guest
  memory on first touch), and every broker's produce CPU with it. RSS: VmRSS sampled every
  50 ms; VmHWM for the peaks. Kafka's figure includes its 1 GiB heap (-Xms1G
  as kafka-server-start.sh sets it) as far as it has been touched.
- mock: librdkafka's mock cluster keeps only the last 5 MB of a partition, so
  its consume rows re-read the retained part from the start ({mock_mb:.0f} MB in
  all), and it holds an empty fetch for the full fetch.wait.max.ms instead of
  answering when data arrives (run with fetch.wait.max.ms=10): its consume and
  latency rows are not a ceiling, its produce rows are.
- "x!" marks a figure from a workload that failed in part; "FAILED"/"crash"
  are explained in the failures below and in build/bench-logs/.
"""


def main():
    brokers = [b.strip() for b in os.environ.get("BENCH_BROKERS", ",".join(ALL_BROKERS)).split(",") if b.strip()]
    for b in brokers:
        if b not in BROKER_CLASSES:
            sys.exit("bench: unknown broker %r (BENCH_BROKERS from %s)" % (b, ",".join(ALL_BROKERS)))
    for exe in (DRIVER, LIMITS) + ((RUNNEL,) if "runnel" in brokers else ()) + ((MOCK,) if "mock" in brokers else ()):
        if not os.access(exe, os.X_OK):
            sys.exit("bench: %s is missing (make bench builds it)" % exe)
    out_prefix = os.environ.get("BENCH_OUT", os.path.join(BUILD, "bench"))
    # Idle connections need file descriptors on both ends; brokers inherit this.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    plan = Plan()
    fd_room = hard - 1000
    if plan.idle_connections > fd_room:
        log("idle connections limited to %d by RLIMIT_NOFILE %d" % (fd_room, hard))
        plan.idle_connections = max(0, fd_room)

    base_dir = tempfile.mkdtemp(prefix="runnel-bench-", dir=os.environ.get("BENCH_DIR") or None)
    started = time.monotonic()
    log("BENCH_SCALE=%g brokers=%s data under %s" % (SCALE, ",".join(brokers), base_dir))
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    os.makedirs(LOG_DIR, exist_ok=True)
    results = {}
    try:
        limits = run_limits(base_dir)
        log("limits: %s" % json.dumps(limits))
        for name in brokers:
            broker = BROKER_CLASSES[name](base_dir)
            session = Session(broker, plan)
            results[name] = session.results
            t0 = time.monotonic()
            session.results["disk_before"] = probe_disk(base_dir)
            try:
                log("starting %s" % name)
                broker.start()
                session.results["start_s"] = broker.start_s
                session.results["pid"] = broker.pid
                log("%s answers Metadata %.0f ms after exec, on %s" % (name, broker.start_s * 1000,
                                                                     broker.bootstrap))
                session.run()
            except Exception as e:  # noqa: BLE001 - report and go on with the next broker
                session.results["failures"].append({"workload": "start", "error": "%s: %s" % (type(e).__name__, e),
                                                    "detail": broker.log_tail()})
                log("%s: %s: %s" % (name, type(e).__name__, e))
            finally:
                if broker.is_alive():
                    session.results["rss_hwm_kib"] = session.results.get("rss_hwm_kib") or session.hwm()
                t_stop = time.monotonic()
                broker.stop()
                session.results["exit_status"] = broker.proc.returncode if broker.proc else None
                session.results["stop_s"] = round(time.monotonic() - t_stop, 1)
                t_clean = time.monotonic()
                broker.cleanup()
                session.results["cleanup_s"] = round(time.monotonic() - t_clean, 1)
                session.results["disk_after"] = probe_disk(base_dir)
                session.results["wall_s"] = round(time.monotonic() - t0, 1)
                log("%s done in %.0f s" % (name, time.monotonic() - t0))
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)

    info = machine_info()
    info["date"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    doc = {"scale": SCALE, "brokers_run": brokers, "plan": plan.as_dict(), "machine": info, "limits": limits,
           "brokers": results, "total_s": round(time.monotonic() - started, 1)}
    write_outputs(doc, out_prefix)
    log("wrote %s.md and %s.json in %.0f s" % (out_prefix, out_prefix, doc["total_s"]))
    return 0


def write_outputs(doc, out_prefix):
    """build/bench.md and build/bench.json from one run's figures."""
    brokers = doc.get("brokers_run") or [b for b in ALL_BROKERS if b in doc["brokers"]]
    results, limits, info, plan = doc["brokers"], doc["limits"], doc["machine"], doc["plan"]
    rows = build_rows(results, limits, brokers)
    table = render_table(rows, brokers)
    failures = []
    for b in brokers:
        r = results.get(b, {})
        if r.get("crashed"):
            c = r["crashed"]
            failures.append("- %s exited with status %s during %s; log: %s\n\n```\n%s\n```" % (
                b, c["status"], c["workload"], c["log"], c["log_tail"]))
        for f in r.get("failures", []):
            failures.append("- %s %s: %s%s" % (b, f["workload"], f["error"],
                                               ("\n\n```\n%s\n```" % f["detail"].strip()) if f.get("detail") else ""))
    md = ["# make bench, %s" % info.get("date", "?"), "",
          "`BENCH_SCALE=%g`, %.0f s in all, runnel %s, on %s cores (%s), %s MiB RAM, Linux %s, "
          "open-files limit %s for every broker." % (
              doc["scale"], doc["total_s"], info.get("runnel_commit", "?"), info.get("cpus"), info.get("cpu", "?"),
              fmt_num(info.get("mem_total_kib", 0) / 1024), info.get("kernel"), info.get("rlimit_nofile")),
          "", table, "", "Machine limits, measured in the same run:", "", render_limits(limits), "",
          "The machine is shared; CPU time taken by other users' processes while each broker was measured "
          "(/proc/PID/stat), and by kernel threads (/proc/stat; writeback and softirq work, partly done "
          "for the broker):", "", render_noise(results, brokers), "",
          "Ratios are runnel divided by Kafka: above 1 is better for rows where higher is better "
          "(MB/s, msg/s), below 1 for the rest (ms, CPU, RSS, bytes).", "",
          NOTES.format(librdkafka=info.get("librdkafka", "?"), cpus=info.get("cpus"),
                       lat_warmup=plan["latency_warmup_s"], mock_mb=plan["mock_min_bytes"] / 1e6)]
    if failures:
        md += ["Failures:", ""] + failures + [""]
    text = "\n".join(md)
    os.makedirs(os.path.dirname(out_prefix) or ".", exist_ok=True)
    with open(out_prefix + ".md", "w") as f:
        f.write(text + "\n")
    doc = dict(doc, table=[r.as_dict() for r in rows])
    with open(out_prefix + ".json", "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print(text)


def rerender(json_path):
    """tools/bench.py --render build/bench.json: the table again from the
    figures of a run (after a change to the table, say), without running."""
    with open(json_path) as f:
        doc = json.load(f)
    doc.pop("table", None)
    if "date" not in doc["machine"]:
        doc["machine"]["date"] = datetime.datetime.fromtimestamp(os.path.getmtime(json_path)).strftime(
            "%Y-%m-%d %H:%M")
    write_outputs(doc, json_path[:-5] if json_path.endswith(".json") else json_path)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        sys.exit(rerender(sys.argv[2]))
    sys.exit(main())
