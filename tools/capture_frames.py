#!/usr/bin/env python3
"""capture_frames.py - a recording TCP proxy for Kafka frames.

    capture_frames.py LISTEN_PORT BROKER_HOST:BROKER_PORT OUT_FILE

Forwards every connection to the broker and appends each request frame a
client sends (size prefix included) to OUT_FILE as one hex line:
"<api_key> <api_version> <hex>". Used to collect the real-client byte
vectors that protocol/test_vectors.c decodes and re-encodes. Stops after
60 seconds or on SIGINT; listens on 127.0.0.1 only.
"""
import socket
import struct
import sys
import threading
import time


def pump_requests(src, dst, out, lock):
    buf = b""
    while True:
        data = src.recv(65536)
        if not data:
            break
        dst.sendall(data)
        buf += data
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if len(buf) < 4 + size:
                break
            frame, buf = buf[: 4 + size], buf[4 + size:]
            key, ver = struct.unpack(">hh", frame[4:8])
            with lock:
                out.write(f"{key} {ver} {frame.hex()}\n")
                out.flush()
    dst.shutdown(socket.SHUT_WR)


def pump_plain(src, dst):
    while True:
        data = src.recv(65536)
        if not data:
            break
        dst.sendall(data)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    port = int(sys.argv[1])
    host, bport = sys.argv[2].rsplit(":", 1)
    out = open(sys.argv[3], "a")
    lock = threading.Lock()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    ls.settimeout(1.0)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        b = socket.create_connection((host, int(bport)))
        threading.Thread(target=pump_requests, args=(c, b, out, lock), daemon=True).start()
        threading.Thread(target=pump_plain, args=(b, c), daemon=True).start()


if __name__ == "__main__":
    main()
