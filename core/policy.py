# The decisions the broker makes with no authenticators and no ACL rules configured: the secure
# listener defaults of authentication and authorization.no_match. gatemq.auth and gatemq.acl
# extend these classes with the chain and the rules; the broker imports them only when the
# config has some, since their bytecode is ~60 KB of heap on boards that load .mpy into RAM.
from gatemq.logline import ident
from gatemq.ipaddr import is_loopback

OK = 0x00
NOT_AUTHORIZED = 0x87


def who(client):
    return "client %s (username %s)" % (ident(getattr(client, "clientid", None)), ident(getattr(client, "username", None)))


class Gate:
    # Authentication: the listener's enable_authn, then the chain; an empty chain lets in only
    # clients of loopback listeners and clients with a verified certificate.
    chain = ()

    def __init__(self, wallclock, log):
        self.wallclock = wallclock
        self.log = log

    def authenticate(self, client, listener_cfg):
        # A connection authenticates once, so its is_superuser/acl/auth_expire_at are still the
        # defaults here; the chain sets only what it grants.
        # A refusal is logged once, by the connection that sends the CONNACK.
        rc, reason = self._decide(client, listener_cfg or {})
        if not rc:
            self.log("debug", "authentication allowed %s: %s" % (who(client), reason))
        return rc, reason

    def _decide(self, client, listener_cfg):
        mode = listener_cfg.get("enable_authn", True)
        if mode is False:
            return OK, "enable_authn = false on listener %r" % (getattr(client, "listener", None),)
        if mode == "quick_deny_anonymous" and not getattr(client, "username", None):
            return NOT_AUTHORIZED, "anonymous client (no username) on a quick_deny_anonymous listener"
        if not self.chain:
            if is_loopback(getattr(client, "listener_bind_host", None)):
                return OK, "no authenticators; listener is bound to loopback"
            if getattr(client, "verify_peer", False) and getattr(client, "peer_cert", None):
                return OK, "no authenticators; client presented a verified certificate"
            return NOT_AUTHORIZED, ("no authenticators configured and the listener is neither loopback "
                                    "nor verify_peer TLS; configure `authentication` or enable_authn")
        return self._run_chain(client)


def strip_share(topic_filter):
    # Shared subscriptions are authorized on the real filter, as EMQX does.
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else topic_filter
    if topic_filter.startswith("$queue/"):
        return topic_filter[7:]
    return topic_filter


class NoMatch:
    # Authorization: superusers pass; otherwise the rules (none here) and then no_match decide.
    # authz_cfg: the loaded config's authorization section ({no_match, deny_action, sources, ...},
    # checked by gatemq.config's schema); the sources are gatemq.acl's part.
    def __init__(self, authz_cfg, log=None):
        self.log = log or (lambda level, msg: None)
        self.no_match = authz_cfg["no_match"]
        self._deny_action = authz_cfg["deny_action"]

    @property
    def deny_action(self):
        return self._deny_action

    def check(self, client, action, topic, qos=0, retain=False):
        if action not in ("publish", "subscribe"):
            raise ValueError("action must be publish or subscribe")
        if getattr(client, "is_superuser", False):
            return True
        if action == "subscribe":
            topic = strip_share(topic)
        verdict, where = self._rules(client, action, topic, qos, retain)
        if verdict is None:
            verdict, where = self.no_match, "no_match"
        u = getattr(client, "unsafe_placeholder", None)
        if u is not None and u is not True:
            client.unsafe_placeholder = True
            self.log("warning", "authorization: client %s: its ${%s} holds '/', '+', '#' or NUL, so the rules "
                     "with that placeholder match nothing for it" % (ident(getattr(client, "clientid", None)), u))
        if verdict == "deny":
            # The only line for a denial; the broker hands in a throttled log.
            self.log("info", "authorization: %s of %s by client %s denied (%s)"
                     % (action, ident(topic), ident(getattr(client, "clientid", None)), where))
            return False
        return True

    def _rules(self, client, action, topic, qos, retain):
        return None, None
