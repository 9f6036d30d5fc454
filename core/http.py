# HTTP/1.1 request framing for both ports' dashboards, sans-IO in the manner of h11: a port feeds
# the bytes it reads and takes whole requests out, so both ports have the same head limit, the
# same Content-Length rules, the same refusal of chunked bodies and the same Host check.
#
#     r = RequestReader()
#     r.feed(data)
#     req = r.next()      # a Request, or None for "read more"; HttpError for a bad request, after
#                         # which the connection must close (its framing is lost)
#     if req.expect_continue: ...write "HTTP/1.1 100 Continue" and go on reading
#     req.method, req.target, req.version, req.headers ({lower name: value}), req.body, req.keep_alive

# The most bytes a request line and its headers may take (both ports).
MAX_HEAD = 8192
# The most bytes a request body may take (the API's JSON bodies are small).
MAX_BODY = 65536
# Host header values a loopback listener answers to besides its own address.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class HttpError(Exception):
    # A request the server answers with status and closes: code and message go in the JSON body.
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Request:
    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "expect_continue", "length")


def _bad(message):
    return HttpError(400, "BAD_REQUEST", message)


def parse_head(head):
    # b"GET /x HTTP/1.1\r\nHost: a\r\n..." (without the blank line) -> Request without a body.
    try:
        text = head.decode()
    except Exception:
        raise _bad("request head is not UTF-8")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1] or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _bad("malformed request line")
    headers = {}
    lengths = []
    for line in lines[1:]:
        i = line.find(":")
        if i <= 0 or line[i - 1] in " \t" or line[0] in " \t":
            # No obsolete line folding and no space before the colon (RFC 9112 5.1, 5.2).
            raise _bad("malformed header line")
        name = line[:i].lower()
        value = line[i + 1:].strip()
        if name == "content-length":
            lengths.append(value)
        elif name in headers and name != "host":
            value = headers[name] + ", " + value
        elif name == "host" and name in headers:
            raise _bad("more than one Host header")
        headers[name] = value
    req = Request()
    req.method, req.target, req.version = parts
    req.headers = headers
    req.body = b""
    if "transfer-encoding" in headers:
        # Refused rather than parsed: one framing (Content-Length) leaves no room for request
        # smuggling, and the API's bodies are small JSON documents.
        if "chunked" in headers["transfer-encoding"].lower():
            raise HttpError(411, "LENGTH_REQUIRED", "chunked bodies are not accepted; send the body "
                            "with Content-Length")
        raise HttpError(501, "NOT_IMPLEMENTED", "Transfer-Encoding %r is not supported" % headers["transfer-encoding"])
    n = 0
    if lengths:
        v = lengths[0]
        for other in lengths[1:]:
            if other != v:
                raise _bad("Content-Length: conflicting values")
        if not v or not v.isdigit() or len(v) > 12:
            raise _bad("Content-Length: expected a number, got %r" % v[:40])
        n = int(v)
    if n > MAX_BODY:
        raise HttpError(413, "PAYLOAD_TOO_LARGE", "body over %d bytes" % MAX_BODY)
    req.length = n
    conn = headers.get("connection", "").lower()
    req.keep_alive = "close" not in conn if req.version == "HTTP/1.1" else "keep-alive" in conn
    req.expect_continue = n > 0 and headers.get("expect", "").lower() == "100-continue"
    return req


class RequestReader:
    def __init__(self, max_head=MAX_HEAD):
        self.max_head = max_head
        self.buf = b""
        self.req = None  # a request whose head is read and whose body is not yet whole

    def feed(self, data):
        self.buf += data

    def next(self):
        if self.req is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > self.max_head:
                    raise HttpError(431, "HEADERS_TOO_LARGE", "request head over %d bytes" % self.max_head)
                return None
            if end + 4 > self.max_head:
                raise HttpError(431, "HEADERS_TOO_LARGE", "request head over %d bytes" % self.max_head)
            req = parse_head(self.buf[:end])
            self.buf = self.buf[end + 4:]
            self.req = req
            if req.expect_continue and len(self.buf) < req.length:
                return req  # the caller answers 100 Continue; next() then returns it again, whole
        req = self.req
        if len(self.buf) < req.length:
            return None
        req.body = self.buf[:req.length]
        self.buf = self.buf[req.length:]
        req.expect_continue = False
        self.req = None
        return req

    def wanted(self):
        # Bytes still missing from the body of the request being read (0 while reading a head).
        return 0 if self.req is None else self.req.length - len(self.buf)


def split_host(value):
    # "example.com:18083" -> "example.com", "[::1]:18083" -> "::1", lower case.
    v = value.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        return v[1:end] if end > 0 else v
    i = v.rfind(":")
    if i >= 0 and v[i + 1:].isdigit() and v.count(":") == 1:
        return v[:i]
    return v


def _is_ip(h):
    if ":" in h:
        for c in h:
            if not ("0" <= c <= "9" or "a" <= c <= "f" or c in ":."):
                return False
        return True
    parts = h.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return False
    return True


def is_loopback(h):
    return h == "localhost" or h == "::1" or h.startswith("127.") or h.startswith("::ffff:127.")


def host_allowed(host, bind_host, allowed=()):
    # Whether a request's Host header names this listener (against DNS rebinding: a page on
    # attacker.example whose name later resolves to 127.0.0.1 sends Host: attacker.example).
    # Accepted: the bind address itself; for a loopback bind, the loopback names and addresses;
    # for a wildcard bind (0.0.0.0, ::), any IP address, since DNS cannot rebind an address;
    # and every name in dashboard.allowed_hosts ("*" accepts any).
    if host is None:
        return False
    h = split_host(host)
    if not h:
        return False
    for a in allowed:
        if a == "*" or a.lower() == h:
            return True
    b = (bind_host or "").lower()
    if h == b:
        return True
    if is_loopback(b):
        return h in LOOPBACK_NAMES or is_loopback(h)
    if b in ("", "0.0.0.0", "::"):
        return _is_ip(h)
    return False


def check_host(req, bind_host, allowed=()):
    # HttpError 403 unless the request's Host names this listener (see host_allowed).
    host = req.headers.get("host")
    if host is None:
        if req.version == "HTTP/1.1":
            raise _bad("Host header missing")
        return  # an HTTP/1.0 client without Host is no browser, and rebinding needs one
    if not host_allowed(host, bind_host, allowed):
        raise HttpError(403, "FORBIDDEN_HOST", "Host %r is not an address of this dashboard; add the "
                        "name to dashboard.allowed_hosts" % (host or "")[:100])
