# Socket addresses on MicroPython. The unix port hands accept() and getaddrinfo() results as raw
# struct sockaddr bytes and has no getsockname(); the boards hand (ip, port) tuples.
import socket


def peer(sa):
    # accept()'s address -> (ip text, port)
    if type(sa) is tuple:
        return (sa[0], sa[1])
    try:
        t = socket.sockaddr(sa)
    except Exception:
        return ("?", 0)
    try:
        return (socket.inet_ntop(t[0], t[1]), t[2])
    except Exception:
        return ("?", t[2] if len(t) > 2 else 0)


def resolve(host, port):
    # -> (family, sockaddr) for a listening socket; IPv6 literals come without brackets from config.
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    if not ai:
        raise OSError("cannot resolve %s" % host)
    return ai[0][0], ai[0][-1]


def show(host, port):
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def listen(host, port, backlog):
    # -> (non-blocking listening socket, its port). For port 0 the port is picked here: there is
    # no getsockname() to ask which one the system chose.
    family, sa = resolve(host, port or 1)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port:
        s.bind(sa)
    else:
        port = _bind_free(s, host)
    s.listen(backlog)
    s.setblocking(False)
    return s, port


def _bind_free(s, host):
    import os
    for _ in range(200):
        r = os.urandom(2)
        port = 20000 + ((r[0] << 8) | r[1]) % 12000
        try:
            s.bind(resolve(host, port)[1])
            return port
        except OSError:
            pass
    raise OSError("no free port found on %s" % host)
