"""compat-tests/frames.py - every answer a broker sent, read back by Kafka's own parser.

    python3 compat-tests/frames.py PCAP PORT...

Reads a loopback capture (pcapng or pcap, as tshark writes it), puts the
TCP streams to the given broker ports back together, cuts them into Kafka
frames, pairs each response with its request by connection and correlation
id, and hands the pairs to compat-tests/java/FrameJudge.java, which parses
every response with kafka-clients 4.4 (AbstractResponse.parseResponse, what
the Java client runs on a broker's answers). conformance.py runs it after
tshark's dissector: the dissector knows only the API versions of its day,
Kafka's parser knows them all.

A stream the capture lost bytes of (the kernel drops packets when tshark
falls behind) is judged up to the gap and counted. Requests are the
clients' bytes and are not judged; only their headers are kept, to name the
API and version each response must be read as.
"""

import os
import struct
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KAFKA_LIB = os.path.join(REPO, "build", "kafka-lib")
CLASSES = os.path.join(REPO, "build", "compat-java")
SOURCE = os.path.join(HERE, "java", "FrameJudge.java")

REQUEST_HEAD_BYTES = 65536       # enough of a request for its header
FRAME_BYTES_MAX = 256 << 20      # a response larger than this is not buffered
OUT_OF_ORDER_SEGMENTS_MAX = 4096
JUDGE_TIMEOUT_S = 900

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 0, 1, 113, 276


# ---------------------------------------------------------------------------
# Capture files: (linktype, packet bytes) in file order.

def read_packets(path):
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        if magic == b"\x0a\x0d\x0d\x0a":
            yield from _read_pcapng(f)
        elif magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
            yield from _read_pcap(f)
        else:
            raise ValueError("%s is neither pcapng nor pcap" % path)


def _read_pcap(f):
    head = f.read(24)
    endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF
    while True:
        rec = f.read(16)
        if len(rec) < 16:
            return
        caplen, origlen = struct.unpack(endian + "II", rec[8:16])
        data = f.read(caplen)
        if len(data) < caplen:
            return
        yield linktype, data, caplen < origlen


def _read_pcapng(f):
    endian = "<"
    linktypes = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            bom = f.read(4)
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack(endian + "I", head[4:8])[0]
            f.seek(length - 12, os.SEEK_CUR)
            linktypes = []
            continue
        btype, length = struct.unpack(endian + "II", head)
        if length < 12:
            return
        body = f.read(length - 8)
        if len(body) < length - 8:
            return
        if btype == 1:                                  # interface description
            linktypes.append(struct.unpack(endian + "H", body[:2])[0])
        elif btype == 6:                                # enhanced packet
            iface, _hi, _lo, caplen, origlen = struct.unpack(endian + "IIIII", body[:20])
            if iface < len(linktypes):
                yield linktypes[iface], body[20:20 + caplen], caplen < origlen
        elif btype == 3 and linktypes:                  # simple packet
            origlen = struct.unpack(endian + "I", body[:4])[0]
            data = body[4:4 + origlen]
            yield linktypes[0], data, len(data) < origlen


def tcp_segment(linktype, data):
    """(src, sport, dst, dport, seq, flags, payload) or None."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, off = struct.unpack(">H", data[12:14])[0], 14
        while ethertype == 0x8100 and len(data) >= off + 4:   # VLAN
            ethertype, off = struct.unpack(">H", data[off + 2:off + 4])[0], off + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        ethertype, off = struct.unpack(">H", data[14:16])[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        ethertype, off = struct.unpack(">H", data[0:2])[0], 20
    elif linktype == LINKTYPE_NULL:
        family = struct.unpack("<I", data[:4])[0]
        ethertype, off = (0x0800 if family == 2 else 0x86DD), 4
    else:
        return None
    if ethertype == 0x0800:
        if len(data) < off + 20 or data[off + 9] != 6:
            return None
        ihl = (data[off] & 0x0F) * 4
        total = struct.unpack(">H", data[off + 2:off + 4])[0]
        src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
        end = off + total if total else len(data)
        off += ihl
    elif ethertype == 0x86DD:
        if len(data) < off + 40 or data[off + 6] != 6:  # no extension headers on loopback
            return None
        plen = struct.unpack(">H", data[off + 4:off + 6])[0]
        src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
        off += 40
        end = off + plen
    else:
        return None
    if len(data) < off + 20:
        return None
    sport, dport, seq = struct.unpack(">HHI", data[off:off + 8])
    doff = (data[off + 12] >> 4) * 4
    flags = data[off + 13]
    return src, sport, dst, dport, seq, flags, data[off + doff:end]


# ---------------------------------------------------------------------------
# One direction of one connection, put back in order and cut into frames.

class Flow:
    def __init__(self, is_request):
        self.is_request = is_request
        self.next_seq = None            # None until the SYN is seen
        self.pending = {}               # seq -> payload arriving early
        self.buf = bytearray()
        self.skip = 0                   # request body bytes still to pass over
        self.need = None                # size of the frame being gathered
        self.is_broken = False

    def add(self, seq, flags, payload, on_frame):
        if self.is_broken:
            return
        if flags & 0x02:                # SYN
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            self.pending.clear()
            return
        if self.next_seq is None or not payload:
            return
        delta = (seq - self.next_seq) & 0xFFFFFFFF
        if delta >= 0x80000000:         # (partly) seen before: a retransmission
            behind = (self.next_seq - seq) & 0xFFFFFFFF
            if behind >= len(payload):
                return
            payload, seq = payload[behind:], self.next_seq
            delta = 0
        if delta:
            self.pending[seq] = payload
            if len(self.pending) > OUT_OF_ORDER_SEGMENTS_MAX:
                self.is_broken = True   # the capture lost a segment for good
            return
        self._take(payload, on_frame)
        while self.next_seq in self.pending:
            self._take(self.pending.pop(self.next_seq), on_frame)

    def _take(self, payload, on_frame):
        self.next_seq = (self.next_seq + len(payload)) & 0xFFFFFFFF
        view = memoryview(payload)
        while view:
            if self.skip:
                n = min(self.skip, len(view))
                self.skip -= n
                view = view[n:]
                continue
            if self.need is None:
                take = min(4 - len(self.buf), len(view))
                self.buf += view[:take]
                view = view[take:]
                if len(self.buf) < 4:
                    return
                size = struct.unpack(">i", self.buf)[0]
                self.buf = bytearray()
                if size < 0 or (not self.is_request and size > FRAME_BYTES_MAX):
                    self.is_broken = True
                    return
                self.need = size
                if self.is_request and size > REQUEST_HEAD_BYTES:
                    self.need, self.skip = REQUEST_HEAD_BYTES, size - REQUEST_HEAD_BYTES
            take = min(self.need - len(self.buf), len(view))
            self.buf += view[:take]
            view = view[take:]
            if len(self.buf) == self.need:
                frame, self.buf, self.need = bytes(self.buf), bytearray(), None
                on_frame(frame)         # a big request's head; its body is passed over next


def extract_pairs(pcap, ports, out_path):
    """Writes the (request head, response) pairs for FrameJudge; returns counts."""
    ports = set(ports)
    flows = {}
    pending = {}                        # connection -> {correlation id: (key, version, head)}
    counts = {"pairs": 0, "unmatched_responses": 0, "truncated_packets": 0, "broken_streams": 0,
              "connections": 0}

    with open(out_path, "wb") as out:
        def on_request(conn):
            def handle(frame):
                if len(frame) < 8:
                    return
                key, version, corr = struct.unpack(">hhi", frame[:8])
                pending.setdefault(conn, {})[corr] = (key, version, frame)
            return handle

        def on_response(conn):
            def handle(frame):
                if len(frame) < 4:
                    return
                corr = struct.unpack(">i", frame[:4])[0]
                req = pending.get(conn, {}).pop(corr, None)
                if req is None:
                    counts["unmatched_responses"] += 1
                    return
                key, version, head = req
                out.write(struct.pack(">hhi", key, version, len(head)) + head)
                out.write(struct.pack(">i", len(frame)) + frame)
                counts["pairs"] += 1
            return handle

        for linktype, data, is_truncated in read_packets(pcap):
            seg = tcp_segment(linktype, data)
            if seg is None:
                continue
            src, sport, dst, dport, seq, flags, payload = seg
            if dport in ports:
                conn, is_request = (src, sport, dst, dport), True
            elif sport in ports:
                conn, is_request = (dst, dport, src, sport), False
            else:
                continue
            if is_truncated and payload:
                counts["truncated_packets"] += 1
            fkey = (conn, is_request)
            flow = flows.get(fkey)
            if flow is None or flags & 0x02:
                if flow is not None and flow.is_broken:
                    counts["broken_streams"] += 1
                flow = flows[fkey] = Flow(is_request)
                if is_request:
                    counts["connections"] += 1
                    pending.pop(conn, None)
            flow.add(seq, flags, payload, on_request(conn) if is_request else on_response(conn))
    counts["broken_streams"] += sum(1 for f in flows.values() if f.is_broken)
    return counts


# ---------------------------------------------------------------------------
# Kafka's parser.

def compile_judge():
    """javac FrameJudge.java into build/compat-java/ unless its class is newer; the java command."""
    compiled = os.path.join(CLASSES, "FrameJudge.class")
    if not os.path.exists(compiled) or os.path.getmtime(compiled) < os.path.getmtime(SOURCE):
        os.makedirs(CLASSES, exist_ok=True)
        subprocess.run(["javac", "-d", CLASSES, "-cp", os.path.join(KAFKA_LIB, "*"), SOURCE],
                       check=True, stdin=subprocess.DEVNULL, timeout=300)
    return ["java", "-Xmx1G", "-XX:TieredStopAtLevel=1",
            "-cp", CLASSES + os.pathsep + os.path.join(KAFKA_LIB, "*"), "FrameJudge"]


def judge(pcap, ports, pairs_path):
    """{"counts", "apis": [{key, version, judged, malformed, first}], "summary"} for a capture."""
    import json
    counts = extract_pairs(pcap, ports, pairs_path)
    try:
        out = subprocess.run(compile_judge() + [pairs_path], capture_output=True, text=True,
                             timeout=JUDGE_TIMEOUT_S, check=True).stdout
    finally:
        os.unlink(pairs_path)
    apis, summary = [], {}
    for line in out.splitlines():
        row = json.loads(line)
        if row.get("summary"):
            summary = row
        else:
            apis.append(row)
    return {"counts": counts, "apis": apis, "summary": summary}


# ---------------------------------------------------------------------------
# The judge judged: a scenario that shows it reads runnel's answers and
# catches damaged ones.

def _packet(sport, dport, seq, flags, payload=b""):
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0, 64, 6, 0,
                     b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x01")
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + payload


def write_capture(path, connections):
    """A pcap of loopback connections, each (client port, broker port, request bytes, response bytes),
    every stream sent in two segments, the second before the first (reassembly is part of the test)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))

        def put(pkt):
            f.write(struct.pack("<IIII", 0, 0, len(pkt), len(pkt)) + pkt)

        for cport, bport, request, response in connections:
            put(_packet(cport, bport, 1000, 0x02))
            put(_packet(bport, cport, 5000, 0x12))
            for sport, dport, isn, data in ((cport, bport, 1001, request), (bport, cport, 5001, response)):
                half = len(data) // 2
                put(_packet(sport, dport, isn + half, 0x18, data[half:]))
                put(_packet(sport, dport, isn, 0x18, data[:half]))


def scenario_frame_judge(ctx):
    """Kafka's parser, as conformance.py runs it on a capture, reads runnel's answers and catches damaged ones."""
    from harness import check
    import socket
    import wire

    broker = ctx.broker()
    asked = [(18, 0, b"", False),                                   # ApiVersions v0
             (18, 3, wire.compact_string_bytes("judge") + wire.compact_string_bytes("1") + b"\x00", True),
             (3, 12, b"\x00\x01\x00\x00", True)]                      # Metadata v12: all topics
    exchanges = []
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        for i, (key, version, body, flexible) in enumerate(asked):
            request = wire.encode_request(key, version, 100 + i, body, flexible=flexible)
            sock.sendall(request)
            payload = wire.read_frame(sock)
            check(payload is not None, "no answer to api key %d v%d" % (key, version))
            exchanges.append((request, struct.pack(">i", len(payload)) + payload))

    def damaged(response, cut):
        body = response[4:len(response) - cut] if cut > 0 else response[4:] + b"\x00" * -cut
        return struct.pack(">i", len(body)) + body

    connections = [(40000 + i, broker.port, req, resp) for i, (req, resp) in enumerate(exchanges)]
    connections += [(41000, broker.port, exchanges[2][0], damaged(exchanges[2][1], 3)),
                    (41001, broker.port, exchanges[2][0], damaged(exchanges[2][1], -2))]
    pcap = ctx.path("judge.pcap")
    write_capture(pcap, connections)
    result = judge(pcap, [broker.port], pcap + ".pairs")
    ctx.note("FrameJudge", result)
    by_api = {(r["key"], r["version"]): r for r in result["apis"]}
    check(result["counts"]["pairs"] == 5, "5 answers paired with their requests: %r" % result["counts"])
    check(by_api.get((18, 0), {}).get("malformed") == 0 and by_api.get((18, 3), {}).get("malformed") == 0,
          "ApiVersions answers read whole: %r" % result["apis"])
    metadata = by_api.get((3, 12), {})
    check(metadata.get("judged") == 3 and metadata.get("malformed") == 2,
          "of 3 Metadata v12 answers the 2 damaged ones are malformed: %r" % metadata)
    ctx.say("Kafka's parser: %d answers read, the 2 damaged ones caught (%s)"
             % (result["summary"]["judged"], metadata.get("first", "")[:80]))


SCENARIOS = [("frame_judge", scenario_frame_judge)]


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    result = judge(argv[1], [int(p) for p in argv[2:]], argv[1] + ".pairs")
    for row in result["apis"]:
        print("%-4d v%-3d judged %7d  malformed %d  %s" % (row["key"], row["version"], row["judged"],
                                                          row["malformed"], row["first"]))
    print(result["counts"], result["summary"])
    return 1 if result["summary"].get("malformed") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
