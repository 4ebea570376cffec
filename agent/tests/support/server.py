#!/usr/bin/env python3
"""Stand-in servers for the LAN-in-a-box service tests.

    server.py v6only PORT      HTTP on [::]:PORT with IPV6_V6ONLY set
    server.py hostcheck PORT   HTTP on [::]:PORT (dual-stack) answering 403 unless Host is localhost
    server.py deny PORT        HTTP on [::]:PORT (dual-stack) answering 403 to everyone (auth, no index)
    server.py http-ports PORT COUNT
                               HTTP on [::] (dual-stack), ports PORT to PORT+COUNT-1
    server.py udp-echo PORT    UDP on [::]:PORT (dual-stack) sending every datagram back
    server.py udp-silent PORT  UDP on [::]:PORT (dual-stack) receiving and never answering
    server.py udp-dns PORT     UDP on [::]:PORT (dual-stack) answering DNS queries (REFUSED) and
                               nothing else

Each prints "ready" once it listens and serves until killed.
"""

import http.server
import socket
import sys
import threading


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class HostCheck(Ok):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        if host not in ("localhost", "127.0.0.1"):
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


class Deny(Ok):
    def do_GET(self):
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()


class V6OnlyServer(http.server.HTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class DualStackServer(http.server.HTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def udp_socket(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def is_dns_query(d):
    # A header (12 bytes), QR = 0 (a query), at least one question.
    return len(d) > 12 and d[2] & 0x80 == 0 and int.from_bytes(d[4:6], "big") >= 1


def serve_udp(mode, port):
    s = udp_socket(port)
    print("ready", flush=True)
    while True:
        d, peer = s.recvfrom(4096)
        if mode == "udp-echo":
            s.sendto(d, peer)
        elif mode == "udp-dns" and is_dns_query(d):
            # The same ID and question, QR set, RCODE 5 (REFUSED), no answers.
            s.sendto(d[:2] + bytes([0x80 | (d[2] & 0x01), 0x05]) + d[4:6] + b"\0" * 6 + d[12:], peer)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode.startswith("udp-"):
        serve_udp(mode, port)
        return
    if mode == "http-ports":
        servers = [DualStackServer(("::", p), Ok) for p in range(port, port + int(sys.argv[3]))]
        for extra in servers[1:]:
            threading.Thread(target=extra.serve_forever, daemon=True).start()
        print("ready", flush=True)
        servers[0].serve_forever()
        return
    if mode == "v6only":
        server = V6OnlyServer(("::", port), Ok)
    elif mode == "hostcheck":
        server = DualStackServer(("::", port), HostCheck)
    elif mode == "deny":
        server = DualStackServer(("::", port), Deny)
    else:
        sys.exit(f"unknown mode {mode}")
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
