#!/usr/bin/env python3
"""capture_corpus.py - a recording TCP proxy that writes fuzz seeds.

    capture_corpus.py LISTEN_PORT BROKER_HOST:BROKER_PORT OUT_DIR [SECONDS]

Forwards every connection to the broker (listening on 127.0.0.1 only) and
writes each frame it sees as one input of fuzz/request.c into OUT_DIR:

    request   b"\\x00" + the frame, size prefix included (mode 0)
    response  b"\\x01" + api key byte + version byte + the frame without its
              size (mode 1); the key and version are those of the request
              with the same correlation id on that connection

Files are named <key>-v<version>-<req|resp>-<sha1 prefix>, so the same frame
captured twice is one file. Stops after SECONDS (default 60) or on SIGINT.
tools/capture_frames.py records requests as hex lines for the unit-test
vectors; this one records both directions as fuzz inputs. Shrink what it
wrote with libFuzzer's -merge=1 before committing.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time


def save(out_dir, name, data):
    digest = hashlib.sha1(data).hexdigest()[:12]
    with open(os.path.join(out_dir, f"{name}-{digest}"), "wb") as f:
        f.write(data)


def frames(sock):
    """Yields (raw bytes read, complete frames) until the socket closes."""
    buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return
        buf += data
        done = []
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if size < 0 or len(buf) < 4 + size:
                break
            done.append(buf[: 4 + size])
            buf = buf[4 + size:]
        yield data, done


def pump_requests(src, dst, out_dir, inflight, lock):
    for data, done in frames(src):
        dst.sendall(data)
        for frame in done:
            if len(frame) < 12:
                continue
            key, ver, corr = struct.unpack(">hhi", frame[4:12])
            with lock:
                inflight[corr] = (key, ver)
            save(out_dir, f"{key:02d}-v{ver}-req", b"\x00" + frame)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def pump_responses(src, dst, out_dir, inflight, lock):
    for data, done in frames(src):
        dst.sendall(data)
        for frame in done:
            if len(frame) < 8:
                continue
            (corr,) = struct.unpack(">i", frame[4:8])
            with lock:
                kv = inflight.pop(corr, None)
            if kv is None or not (0 <= kv[0] < 256 and 0 <= kv[1] < 256):
                continue
            save(out_dir, f"{kv[0]:02d}-v{kv[1]}-resp", bytes([1, kv[0], kv[1]]) + frame[4:])
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    port = int(sys.argv[1])
    host, bport = sys.argv[2].rsplit(":", 1)
    out_dir = sys.argv[3]
    seconds = float(sys.argv[4]) if len(sys.argv) == 5 else 60.0
    os.makedirs(out_dir, exist_ok=True)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    ls.settimeout(0.5)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        b = socket.create_connection((host, int(bport)))
        inflight, lock = {}, threading.Lock()
        threading.Thread(target=pump_requests, args=(c, b, out_dir, inflight, lock), daemon=True).start()
        threading.Thread(target=pump_responses, args=(b, c, out_dir, inflight, lock), daemon=True).start()


if __name__ == "__main__":
    main()
