"""compat-tests/conformance.py - the suite under a packet capture, decoded by Wireshark's Kafka dissector.

    python3 compat-tests/conformance.py RESULTS.json PCAP -- run.py arguments...

Captures loopback traffic to and from the brokers' ports (harness.py's
BROKER_PORT_MIN..MAX) with tshark while compat-tests/run.py runs (with
--results RESULTS.json), then decodes the capture with tshark's Kafka
dissector on every port a broker of the run listened on. A packet the
dissector finds malformed, or flags with an error, fails the run and is
named with its API key and version: the bytes runnel (and its clients) put
on the wire are Kafka's protocol as an independent decoder reads it.

Only the broker's packets are judged. tshark 4.0's dissector knows Kafka's
APIs up to the versions of its time: a packet of a newer version it does
not know ("Unsupported ... version") is counted but not judged, and so are
client requests it cannot read (it misreads librdkafka's JoinGroup v5 and
SyncGroup v3 requests, for one). So every response is also read back by
Kafka's own parser (frames.py and java/FrameJudge.java: kafka-clients 4.4's
AbstractResponse.parseResponse, every API at every version); a response it
cannot read whole fails the run the same way.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep compat-tests/ free of __pycache__
from harness import BROKER_PORT_MAX, BROKER_PORT_MIN  # noqa: E402
import frames  # noqa: E402

DECODE_TIMEOUT_S = 900


def main(argv):
    if len(argv) < 4 or argv[3] != "--":
        print("usage: conformance.py RESULTS.json PCAP -- run.py arguments...", file=sys.stderr)
        return 2
    results_path, pcap = argv[1], argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    # Only the brokers' ports (harness.py puts them in one range): other programs'
    # loopback traffic on a shared machine once made a capture of 49 GiB.
    capture = subprocess.Popen(["tshark", "-q", "-i", "lo", "-f", "tcp portrange %d-%d" % (BROKER_PORT_MIN,
                                                                                          BROKER_PORT_MAX),
                                "-w", pcap],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(2.0)  # tshark starts capturing asynchronously
    if capture.poll() is not None:
        print("conformance: tshark could not capture on lo: %s" % capture.stderr.read().decode()[-500:],
              file=sys.stderr)
        return 1
    try:
        suite = subprocess.call([sys.executable, os.path.join(here, "run.py"), "--results", results_path]
                                + argv[4:])
    finally:
        time.sleep(1.0)
        capture.send_signal(signal.SIGINT)
        try:
            capture.wait(timeout=30)
        except subprocess.TimeoutExpired:
            capture.kill()
            capture.wait()

    with open(results_path) as f:
        results = json.load(f)
    ports = sorted({p for r in results["scenarios"].values() for p in r.get("ports", [])})
    if not ports:
        print("conformance: no broker ports recorded; nothing to decode")
        return suite or 1
    decode = ["tshark", "-r", pcap, "-n"]
    for port in ports:
        decode += ["-d", "tcp.port==%d,kafka" % port]
    decode += ["-Y", "kafka && (_ws.malformed || _ws.expert.severity >= \"warning\")", "-T", "fields",
               "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "kafka.api_key",
               "-e", "kafka.api_version", "-e", "_ws.expert.severity", "-e", "_ws.expert.message",
               "-e", "_ws.malformed"]
    out = subprocess.run(decode, capture_output=True, text=True, timeout=DECODE_TIMEOUT_S)
    malformed, warnings = [], {}
    broker_ports = set(str(p) for p in ports)
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        fields += [""] * (8 - len(fields))
        frame, src, _dst, key, version, _severity, message, is_malformed = fields[:8]
        # The broker's answers are what runnel is judged on; requests are
        # the clients'. A version newer than the dissector knows is its gap.
        is_unknown_version = "Unsupported" in message or "Unknown" in message
        if src in broker_ports and (is_malformed or "Malformed" in message) and not is_unknown_version:
            malformed.append((frame, key, version, message.split(",")[-1]))
        else:
            who = "broker" if src in broker_ports else "client"
            what = "version unknown to the dissector" if is_unknown_version else message.split(",")[-1]
            warnings[(who, what)] = warnings.get((who, what), 0) + 1
    size_mib = os.path.getsize(pcap) / (1 << 20) if os.path.exists(pcap) else 0
    print("conformance: %.0f MiB captured on %d broker ports; the dissector flagged %d packets, warned of %d"
          % (size_mib, len(ports), len(malformed), sum(warnings.values())))
    for (who, what), n in sorted(warnings.items()):
        print("    not judged x%d: %s packet, %s" % (n, who, what))
    judged = frames.judge(pcap, ports, pcap + ".pairs")
    summary, counts = judged["summary"], judged["counts"]
    print("conformance: Kafka's parser read %d responses on %d connections: %d malformed (%d answers to "
          "requests the capture missed, %d streams cut by lost packets, not judged)"
          % (summary.get("judged", 0), counts["connections"], summary.get("malformed", 0),
             counts["unmatched_responses"], counts["broken_streams"]))
    # Where Kafka's parser read every answer of an API whole, the
    # dissector's complaint about that API is the dissector's own error
    # (tshark 4.0 misreads JoinGroup and SyncGroup answers, for one).
    clean_keys = {str(r["key"]) for r in judged["apis"]} - {str(r["key"]) for r in judged["apis"] if r["malformed"]}
    disputed = [m for m in malformed if m[1] in clean_keys]
    malformed = [m for m in malformed if m[1] not in clean_keys]
    by_kind = {}
    for _frame, key, _version, message in disputed:
        by_kind[(key, message.strip())] = by_kind.get((key, message.strip()), 0) + 1
    for (key, message), n in sorted(by_kind.items()):
        print("    not counted x%d: api key %s, the dissector says \"%s\"; Kafka's parser read every answer "
              "of that API whole" % (n, key, message))
    for row in judged["apis"]:
        if row["malformed"]:
            malformed.append(("-", str(row["key"]), str(row["version"]),
                              "Kafka's parser: %d of %d: %s" % (row["malformed"], row["judged"], row["first"])))
    for frame, key, version, message in malformed[:50]:
        print("    MALFORMED frame %s: api key %s version %s: %s" % (frame, key or "?", version or "?", message))
    kinds = sorted({(key, version, message) for _, key, version, message in malformed})
    results["malformed"] = [list(k) for k in kinds]
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
    return suite or (1 if malformed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
