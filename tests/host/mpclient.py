# A device-side MQTT client for the tests: it runs under MicroPython (a second `micropython`
# process, importing gatemq.codec from build/mpy/lib) and talks to the broker the way a board
# would, over plain TCP or mutual TLS with DER certificate and key. It prints one JSON object per
# event on stdout for the host test to read.
#
#   MICROPYPATH=build/mpy/lib micropython tests/host/mpclient.py --port 8883 --id dev1 \
#       --ca ca.der --cert dev1.der --key dev1.key.der --sub 'a/#' --pub a/b hello --expect 1
import sys

if ".frozen" not in sys.path:
    sys.path.append(".frozen")  # MICROPYPATH drops the unix port's frozen modules

import json
import select
import socket
import time

from gatemq import codec


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def emit(ev, **kw):
    kw["ev"] = ev
    print(json.dumps(kw))


class Client:
    def __init__(self, host, port, client_id, version=codec.MQTT311, ca=None, cert=None, key=None,
                 sni="localhost", username=None, password=None, keepalive=60):
        self.version = version
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.connect(ai[-1])
        if ca is not None:
            import tls
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            if cert is not None:
                ctx.load_cert_chain(read_file(cert), read_file(key))
            ctx.load_verify_locations(read_file(ca))
            ctx.verify_mode = tls.CERT_REQUIRED
            s = ctx.wrap_socket(s, server_hostname=sni)
        self.sock = s
        self.reader = codec.Reader()
        self.queue = []
        self.pid = 0
        s.setblocking(False)
        self.poller = select.poll()
        self.poller.register(s, select.POLLIN)
        self._send(codec.encode_connect(client_id, version, True, keepalive, username, password))
        ack = self.wait(codec.CONNACK, 5)
        self.connack = ack

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def poll(self, timeout):
        # Reads what arrives within timeout into self.queue, acknowledging QoS 1 messages.
        # The socket is non-blocking after the handshake: MicroPython's read(n) on a blocking
        # stream waits for all n bytes, and a socket timeout breaks the TLS session for good.
        # Read until the socket is dry before polling, since mbedTLS may hold decrypted bytes
        # that poll() cannot see.
        end = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while True:
            data = self.sock.read(1024)
            if data == b"":
                raise OSError("connection closed by the broker")
            if data:
                for fb, body in self.reader.feed(data):
                    p = codec.decode(fb, body, self.version)
                    if p.ptype == codec.PUBLISH and p.qos == 1:
                        self._send(codec.encode_ack(codec.PUBACK, p.pid, 0, None, self.version))
                    self.queue.append(p)
                continue
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            self.poller.poll(min(left, 50))

    def _send(self, data):
        mv = memoryview(data)
        while mv:
            n = self.sock.write(mv)
            if n:
                mv = mv[n:]
            else:
                time.sleep_ms(5)

    def wait(self, ptype, timeout):
        end = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while True:
            for i, p in enumerate(self.queue):
                if p.ptype == ptype:
                    return self.queue.pop(i)
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                raise OSError("no %s within %ss" % (codec.NAMES[ptype], timeout))
            self.poll(min(left / 1000, 0.2))

    def subscribe(self, topic, qos):
        self._send(codec.encode_subscribe(self._next_pid(), [(topic, qos)], None, self.version))
        return self.wait(codec.SUBACK, 5)

    def publish(self, topic, payload, qos):
        pid = self._next_pid() if qos else 0
        pkt = codec.encode_publish(topic.encode(), payload, qos, False, False, pid, b"", self.version)
        self._send(pkt)
        if qos == 1:
            return self.wait(codec.PUBACK, 5)
        return None

    def disconnect(self):
        try:
            self._send(codec.encode_disconnect(0, None, self.version))
        finally:
            self.sock.close()


def main(argv):
    o = {"host": "127.0.0.1", "port": 1883, "id": "mpclient", "qos": 0, "expect": 0,
         "timeout": 5.0, "ca": None, "cert": None, "key": None, "sni": "localhost",
         "username": None, "password": None, "hold": 0.0}
    subs, pubs = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--sub":
            subs.append(argv[i + 1])
            i += 2
        elif a == "--pub":
            pubs.append((argv[i + 1], argv[i + 2].encode()))
            i += 3
        elif a.startswith("--"):
            k = a[2:]
            v = argv[i + 1]
            o[k] = int(v) if k in ("port", "qos", "expect") else float(v) if k in ("timeout", "hold") else v
            i += 2
        else:
            raise SystemExit("unknown argument %s" % a)
    try:
        c = Client(o["host"], o["port"], o["id"], ca=o["ca"], cert=o["cert"], key=o["key"],
                   sni=o["sni"], username=o["username"], password=o["password"])
    except OSError as e:
        emit("error", stage="connect", error=str(e))
        return 1
    emit("connack", rc=c.connack.rc)
    if c.connack.rc:
        return 1
    for t in subs:
        ack = c.subscribe(t, o["qos"])
        emit("suback", topic=t, codes=list(ack.codes) if hasattr(ack, "codes") else [])
    for t, payload in pubs:
        ack = c.publish(t, payload, o["qos"])
        emit("published", topic=t, acked=ack is not None)
    got = 0
    end = time.ticks_add(time.ticks_ms(), int(o["timeout"] * 1000))
    while got < o["expect"] and time.ticks_diff(end, time.ticks_ms()) > 0:
        try:
            p = c.wait(codec.PUBLISH, time.ticks_diff(end, time.ticks_ms()) / 1000)
        except OSError:
            break
        got += 1
        emit("message", topic=p.topic, payload=p.payload.decode(), qos=p.qos)
    if o["hold"]:
        c.poll(o["hold"])
    c.disconnect()
    emit("done", received=got)
    return 0 if got >= o["expect"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
