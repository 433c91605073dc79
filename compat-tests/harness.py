"""compat-tests/harness.py - what every compat scenario stands on.

The broker under test (started, stopped, killed, restarted on its data), the
per-scenario context (a transcript of what the clients said, notes printed
even on PASS), the checks, and the client helpers several scenarios share.
run.py (the runner and the admin scenarios) and logs.py (producing,
consuming, recovery and the on-disk format) import from here.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
from wire import WireError, api_versions_v0  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(REPO, "compat-tests")

STARTUP_TIMEOUT_S = float(os.environ.get("RUNNEL_STARTUP_TIMEOUT_S", "20"))
# Above runnel's own bound on a shutdown (10 s for connections to drain), so
# that a slow stop ends with the broker's own line saying what held it.
STOP_TIMEOUT_S = float(os.environ.get("RUNNEL_STOP_TIMEOUT_S", "20"))
SLOW_STOP_S = 5.0  # a stop slower than this is said under the scenario, pass or not
SCENARIO_TIMEOUT_S = 90 + STARTUP_TIMEOUT_S
CLIENT_TIMEOUT_S = 60
LOG_TAIL_LINES = 200
TRANSCRIPT_OUTPUT_BYTES = 6000

BROKER_ID = 1
SEGMENT_BYTES_DEFAULT = "1073741824"

# Kafka error codes the scenarios expect (Errors.java).
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_TOPIC = 17

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


class Failure(Exception):
    """A scenario's expectation did not hold."""


class ScenarioTimeout(Exception):
    """A scenario ran past SCENARIO_TIMEOUT_S."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def eventually(fn, what, timeout_s=5.0, interval_s=0.1):
    """Calls fn until it returns a true value, for at most timeout_s.

    Kafka applies an admin change to its metadata cache just after answering
    the request, so a listing right after CreateTopics/DeleteTopics may lag.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Failure("%s: still not true after %.1f s (last: %r)" % (what, timeout_s, last))
        time.sleep(interval_s)


# ---------------------------------------------------------------------------
# The broker under test.


# Brokers listen on ports of this range, below Linux's ephemeral ports
# (32768-60999), so that a capture can keep to the suite's own traffic
# (conformance.py) on a machine where other programs talk on loopback too.
BROKER_PORT_MIN, BROKER_PORT_MAX = 21000, 23999
FREE_PORT_TRIES = 200


def free_port():
    """A port of BROKER_PORT_MIN..MAX that nothing listens on now (random, bounded tries)."""
    for _ in range(FREE_PORT_TRIES):
        port = random.randint(BROKER_PORT_MIN, BROKER_PORT_MAX)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Failure("no free port in %d-%d after %d tries" % (BROKER_PORT_MIN, BROKER_PORT_MAX, FREE_PORT_TRIES))


def describe_exit(code):
    if code is not None and code < 0:
        try:
            return "signal %s" % signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "exit code %s" % code


def tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, "r", errors="replace") as f:
            content = f.read().splitlines()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    if len(content) > lines:
        return "... (%d lines before)\n%s" % (len(content) - lines, "\n".join(content[-lines:]))
    return "\n".join(content)


class Broker:
    """One broker process; start() may be called again (same port, same data)."""

    def __init__(self, binary, data_dir, log_dir, overrides=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.overrides = list(overrides)
        self.port = free_port()
        self.proc = None
        self.ready_s = None  # the last start(): seconds from exec to the first ApiVersions answer
        self.runs = []  # (argv, stdout path, stderr path, exit code)
        self.problems = []  # things noticed at stop: sanitizer reports, bad exits
        self.stop_notes = []  # said under the scenario even when it passes
        self.api_keys = {}  # what ApiVersions v0 advertised when the broker became ready

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def argv(self):
        listener = "PLAINTEXT://127.0.0.1:%d" % self.port
        argv = [self.binary,
                "--override", "listeners=" + listener,
                "--override", "advertised.listeners=" + listener,
                "--override", "log.dirs=" + self.data_dir,
                "--override", "num.network.threads=2"]
        for kv in self.overrides:
            argv += ["--override", kv]
        return argv

    def start(self):
        assert self.proc is None
        n = len(self.runs)
        out_path = os.path.join(self.log_dir, "broker-%d.stdout" % n)
        err_path = os.path.join(self.log_dir, "broker-%d.stderr" % n)
        argv = self.argv()
        self.runs.append([argv, out_path, err_path, None])
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=REPO, start_new_session=True)
        self.wait_ready()
        self.ready_s = time.monotonic() - started

    def wait_ready(self):
        """Until the port accepts and ApiVersions v0 is answered, bounded."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_error = "never tried"
        correlation_id = 1000
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise Failure("broker ended with %s during start-up" % describe_exit(code))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                    correlation_id += 1
                    got, error_code, api_keys, _ = api_versions_v0(s, correlation_id, timeout_s=2.0)
                    if got == correlation_id and error_code == 0 and api_keys:
                        self.api_keys = api_keys
                        return
                    last_error = "ApiVersions v0 answered corr=%d error=%d with %d keys" % (
                        got, error_code, len(api_keys))
            except (OSError, Failure, WireError) as e:
                last_error = "%s: %s" % (type(e).__name__, e)
            time.sleep(0.01)  # fine enough to time recovery (crash_recovery)
        raise Failure("broker not ready within %.0f s (last attempt: %s)" % (STARTUP_TIMEOUT_S, last_error))

    def check_alive(self):
        code = self.proc.poll() if self.proc else None
        check(self.proc is not None and code is None, "broker is not running (exit code %s)" % code)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; records what went wrong."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        died_early = proc.poll() is not None
        if not died_early:
            proc.send_signal(signal.SIGTERM)
            asked = time.monotonic()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
                took_s = time.monotonic() - asked
                if took_s > SLOW_STOP_S:
                    self.stop_notes.append("the broker took %.1f s to stop after SIGTERM (see its log)" % took_s)
            except subprocess.TimeoutExpired:
                self.problems.append("broker did not exit within %.0f s of SIGTERM; sent SIGKILL"
                                     % STOP_TIMEOUT_S)
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        code = proc.returncode
        self.runs[-1][3] = code
        if died_early:
            self.problems.append("broker died (%s) before the suite stopped it" % describe_exit(code))
        # Clean exits: 0; killed by the default SIGTERM action; 143 (a JVM's exit
        # after its shutdown hooks, for the reference broker).
        elif code not in (0, -signal.SIGTERM, 128 + signal.SIGTERM) and not self.problems:
            self.problems.append("broker ended with %s after SIGTERM" % describe_exit(code))
        self._check_stderr()

    def kill(self):
        """SIGKILL, as a crash or a power cut would leave it; start() again recovers."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        died_early = proc.poll() is not None
        if not died_early:
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
        self.runs[-1][3] = proc.returncode
        if died_early:
            self.problems.append("broker died (%s) before the suite killed it" % describe_exit(proc.returncode))
        self._check_stderr()

    def wait_exit(self, timeout_s):
        """Waits for the broker to end on its own (as Kafka does when its last log dir
        goes offline); its exit code, or None (still running) after timeout_s."""
        if self.proc is None:
            return self.runs[-1][3] if self.runs else None
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self.proc = None
        self.runs[-1][3] = code
        self._check_stderr()
        return code

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _check_stderr(self):
        with open(self.runs[-1][2], "r", errors="replace") as f:
            stderr = f.read()
        for marker in SANITIZER_MARKERS:
            if marker in stderr:
                self.problems.append("sanitizer report in the broker's stderr of run %d (%r)"
                                     % (len(self.runs) - 1, marker))
                break

    def report(self):
        parts = []
        for i, (argv, out_path, err_path, code) in enumerate(self.runs):
            parts.append("--- broker run %d: %s (%s)" % (i, " ".join(argv), describe_exit(code)))
            parts.append("--- stdout:\n" + tail(out_path))
            parts.append("--- stderr:\n" + tail(err_path))
        return "\n".join(parts)


class Context:
    """What a scenario gets: its broker, a transcript of client output, helpers."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.skipped = []  # checks that could not be made (skip_check)
        self.brokers = []
        self.transcript = []  # (label, text)
        self.notes = []  # printed under the scenario's line even when it passes
        self.observations = {}  # key -> what a client saw; compared with Apache Kafka's (compare.py)

    def broker(self, overrides=(), data_dir=None, start=True):
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="data-", dir=self.workdir)
        log_dir = tempfile.mkdtemp(prefix="logs-", dir=self.workdir)
        b = Broker(self.binary, data_dir, log_dir, overrides)
        self.brokers.append(b)
        if start:
            b.start()
        return b

    def note(self, label, text):
        self.transcript.append((label, text if isinstance(text, str) else repr(text)))

    def observe(self, key, value):
        """Records what a client saw, to be compared with what the same story saw against
        Apache Kafka (compare.py). value must be deterministic for a given broker:
        normalise what Kafka leaves open (the order of a listing, generated ids,
        ports, timestamps) before observing it."""
        assert isinstance(key, str) and key not in self.observations, "observed %r twice" % key
        self.observations[key] = observable(value)

    def skip_check(self, text):
        """A check that could not be made against this broker (said even on PASS)."""
        self.notes.append(text)
        self.skipped.append(text)

    def say(self, text):
        """A fact worth seeing under the scenario's line even when it passes."""
        self.notes.append(text)

    def path(self, name):
        """A file of this scenario's own (inputs, outputs), removed with it."""
        return os.path.join(self.workdir, name)

    def run(self, argv, timeout_s=CLIENT_TIMEOUT_S, check_exit=True):
        """Runs a client program; its output goes into the transcript."""
        return self.run_parallel([argv], timeout_s=timeout_s, check_exit=check_exit)[0]

    def run_parallel(self, argvs, timeout_s=CLIENT_TIMEOUT_S, check_exit=True):
        """Runs client programs side by side; [(exit code, stdout, stderr)] in argv order.

        Each gets timeout_s from the common start, then is killed. Outputs go
        into the transcript trimmed to TRANSCRIPT_OUTPUT_BYTES (a consumer may
        print 100,000 records).
        """
        procs = []
        try:
            for argv in argvs:
                try:
                    procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, cwd=HERE))
                except FileNotFoundError:
                    raise Failure("%s is not installed (bash tools/deps.sh test installs it)" % argv[0])
            deadline = time.monotonic() + timeout_s
            results = []
            for argv, p in zip(argvs, procs):
                try:
                    out, err = p.communicate(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    out, err = p.communicate()
                    self.note("$ " + " ".join(argv) + " (timed out)",
                              "stdout:\n%s\nstderr:\n%s" % (_trim(_text(out)), _trim(_text(err))))
                    raise Failure("%s did not finish within %d s" % (argv[0], timeout_s))
                out, err = _text(out), _text(err)
                self.note("$ %s (exit %d)" % (" ".join(argv), p.returncode),
                          "stdout:\n%s\nstderr:\n%s" % (_trim(out), _trim(err)))
                results.append((p.returncode, out, err))
            if check_exit:
                for argv, (code, _, _) in zip(argvs, results):
                    if code != 0:
                        raise Failure("%s exited with %d" % (argv[0], code))
            return results
        finally:
            for p in procs:  # only those this call started, and only if still running
                if p.poll() is None:
                    p.kill()
                    p.wait()


def is_reference(ctx):
    """Whether the broker under test is Apache Kafka (compat-tests/kafka/reference-broker)."""
    return os.path.basename(ctx.binary) == "reference-broker"


def observable(value):
    """value as plain JSON: tuples become lists, sets sorted lists, bytes text
    (or "hex:..." when not UTF-8), dict keys strings. Floats are refused: a
    measured time is no observation."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "hex:" + value.hex()
    if isinstance(value, (list, tuple)):
        return [observable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((observable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {str(k): observable(v) for k, v in value.items()}
    raise TypeError("cannot observe %s %r; say it as text, numbers or lists" % (type(value).__name__, value))


def records_summary(records):
    """A long list of records (already observable) in a few fields that still
    tell two logs apart: the count, the first and last, and a digest of all."""
    import hashlib
    records = observable(list(records))
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()[:16]
    return {"count": len(records), "first": records[0] if records else None,
            "last": records[-1] if records else None, "sha256": digest}


def _trim(text, limit=None):
    limit = TRANSCRIPT_OUTPUT_BYTES if limit is None else limit
    if len(text) <= limit:
        return text
    half = limit // 2
    return "%s\n... (%d characters left out) ...\n%s" % (text[:half], len(text) - 2 * half, text[-half:])


def _text(data):
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


# ---------------------------------------------------------------------------
# Clients


def kafka_python():
    try:
        import kafka  # Debian's python3-kafka
        import kafka.admin  # noqa: F401
        import kafka.errors  # noqa: F401
    except ImportError as e:
        raise Failure("kafka-python is not importable from %s (%s); "
                      "bash tools/deps.sh test installs python3-kafka" % (sys.executable, e))
    return kafka


def admin_client(broker):
    kafka = kafka_python()
    return kafka.admin.KafkaAdminClient(
        bootstrap_servers=broker.bootstrap, client_id="runnel-compat-kafka-python",
        request_timeout_ms=10000, api_version_auto_timeout_ms=10000)


def topic_configs(admin, name):
    """DescribeConfigs for one topic through kafka-python: {key: value}."""
    from kafka.admin import ConfigResource, ConfigResourceType
    responses = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    return resource_configs(responses, name)


def resource_configs(responses, name):
    check(len(responses) == 1, "DescribeConfigs: %d responses" % len(responses))
    resources = responses[0].to_object()["resources"]
    check(len(resources) == 1, "DescribeConfigs: %d resources in the answer" % len(resources))
    res = resources[0]
    check(res["error_code"] == 0, "DescribeConfigs %s: error %s %s" % (name, res["error_code"], res["error_message"]))
    check(res["resource_name"] == name, "DescribeConfigs answered for %r, asked %r" % (res["resource_name"], name))
    return {e["config_names"]: e["config_value"] for e in res["config_entries"]}


def describe_topic(admin, name):
    topics = admin.describe_topics([name])
    check(len(topics) == 1, "Metadata for %s returned %d topics" % (name, len(topics)))
    return topics[0]


def described(topic):
    """kafka-python's describe_topics entry as observed: the topic's error and
    internal flag, and each partition's error, leader, replicas and ISR."""
    return {"error_code": topic["error_code"], "is_internal": topic.get("is_internal"),
            "partitions": {p["partition"]: [p["error_code"], p["leader"], sorted(p["replicas"]), sorted(p["isr"])]
                           for p in topic["partitions"]}}


def check_partitions(topic, count):
    check(topic["error_code"] == 0, "topic %s: error %d" % (topic["topic"], topic["error_code"]))
    parts = sorted(topic["partitions"], key=lambda p: p["partition"])
    check([p["partition"] for p in parts] == list(range(count)),
          "topic %s: partitions %s, want 0..%d" % (topic["topic"], [p["partition"] for p in parts], count - 1))
    for p in parts:
        check(p["error_code"] == 0 and p["leader"] == BROKER_ID and p["replicas"] == [BROKER_ID]
              and p["isr"] == [BROKER_ID],
              "topic %s partition %d: %r, want leader/replicas/isr = broker %d"
              % (topic["topic"], p["partition"], p, BROKER_ID))


def expect_kafka_error(ctx, error_class, errno, fn, what):
    try:
        value = fn()
    except error_class as e:
        ctx.observe(what, {"error": type(e).__name__, "errno": getattr(e, "errno", None)})
        check(getattr(e, "errno", errno) == errno, "%s: errno %s, want %d" % (what, e.errno, errno))
        ctx.note(what, "raised %s as expected: %s" % (type(e).__name__, e))
        return
    except Exception as e:  # noqa: BLE001 - any other outcome is the failure to report
        raise Failure("%s: raised %s (%s), want %s (%d)" % (what, type(e).__name__, e, error_class.__name__, errno))
    raise Failure("%s: succeeded (%r), want %s (%d)" % (what, value, error_class.__name__, errno))


def kcat_metadata(ctx, broker, topic=None):
    argv = ["kcat", "-b", broker.bootstrap, "-L", "-J", "-m", "10"]
    if topic:
        argv += ["-t", topic]
    _, out, _ = ctx.run(argv)
    try:
        return json.loads(out)
    except ValueError as e:
        raise Failure("kcat -L -J printed no JSON: %s" % e)


def kcat_topic(md, name):
    for t in md.get("topics", []):
        if t.get("topic") == name:
            return t
    return None
