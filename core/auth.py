# The authentication chain that runs after the TLS handshake (which is the X.509 step) and after
# the peer-certificate mapping, with EMQX 5's semantics: each enabled authenticator answers
# ignore, allow or deny; the first allow or deny wins; when every one ignores, the client is
# refused. Listener defaults are secure like Mosquitto 2.0 (see docs/auth.md for every case).
# Passwords and tokens are never logged.
# The listener defaults and the empty chain are gatemq.policy's; pwhash, jwt and acl are imported
# where an authenticator needs them, so a config without JWT never loads them.
import json

from gatemq.errors import AuthError, ConfigError
from gatemq.policy import OK, NOT_AUTHORIZED, Gate, is_loopback  # noqa: F401  (is_loopback re-exported)

BAD_CREDENTIALS = 0x86
BAD_METHOD = 0x8C

IGNORE = ("ignore",)


def _text(v):
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode()
        except Exception:
            return None
    return v


# --- password_based / built_in_database ----------------------------------------------------------

def parse_users(data, source="users"):
    # The users file: one JSON object per line (blank lines and lines starting with # are skipped),
    # or a JSON array of the same objects, as EMQX exports them. Fields: user_id, password_hash,
    # salt (default ""), is_superuser (default false), algorithm (optional: overrides the
    # authenticator's password_hash_algorithm for this user, so gatemq-passwd can pick one).
    from gatemq import pwhash
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode()
    stripped = data.strip()
    entries = []
    if stripped.startswith("["):
        try:
            arr = json.loads(stripped)
        except Exception:
            raise ConfigError("%s: not a valid JSON array" % source)
        for i, obj in enumerate(arr):
            entries.append((i + 1, obj))
    else:
        for n, line in enumerate(data.split("\n")):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except Exception:
                raise ConfigError("%s:%d: not a JSON object" % (source, n + 1))
            entries.append((n + 1, obj))
    users = {}
    for n, obj in entries:
        if not isinstance(obj, dict) or not isinstance(obj.get("user_id"), str) \
                or not isinstance(obj.get("password_hash"), str):
            raise ConfigError("%s:%d: each user needs string user_id and password_hash" % (source, n))
        salt = obj.get("salt", "")
        if not isinstance(salt, str):
            raise ConfigError("%s:%d: salt must be a string" % (source, n))
        algo = obj.get("algorithm")
        if algo is not None:
            algo = pwhash.normalise(algo)
        su = obj.get("is_superuser", False)
        users[obj["user_id"]] = (obj["password_hash"], salt, su is True or su == "true", algo)
    return users


def format_user(user_id, password_hash, salt, is_superuser, algorithm=None):
    # One line of the users file, as parse_users reads it.
    obj = {"user_id": user_id, "password_hash": password_hash, "salt": salt, "is_superuser": bool(is_superuser)}
    if algorithm is not None:
        obj["algorithm"] = algorithm
    return json.dumps(obj)


class PasswordDb:
    name = "password_based:built_in_database"

    def __init__(self, cfg, read_file, log):
        self.log = log
        self.user_id_type = cfg.get("user_id_type", "username")
        if self.user_id_type not in ("username", "clientid"):
            raise ConfigError("authentication.user_id_type: expected username|clientid, got %r"
                              % (self.user_id_type,))
        from gatemq import pwhash
        self.algo = pwhash.normalise(cfg.get("password_hash_algorithm"))
        # user_file is gatemq's key; the config schema requires it (EMQX's bootstrap_file is an
        # unknown key there).
        self.path = cfg.get("user_file")
        self.read_file = read_file
        self.users = {}
        self.reload()

    def reload(self):
        if not self.path:
            self.log("warning", "authentication: built_in_database has no user_file; no user can log in")
            return
        try:
            data = self.read_file(self.path)
        except Exception as e:
            raise ConfigError("authentication.user_file: cannot read %r: %s" % (self.path, e))
        self.users = parse_users(data, self.path)

    @property
    def files(self):
        # What Broker.reload_auth reports as re-read.
        if not self.path:
            return ()
        return ("users file %r (%d users)" % (self.path, len(self.users)),)

    def authenticate(self, client, now):
        uid = _text(getattr(client, self.user_id_type, None))
        password = getattr(client, "password", None)
        from gatemq import pwhash
        if uid is None or uid not in self.users:
            # The same hash runs for an unknown user as for a known one: the answer's time must
            # not tell which user ids exist (0.27 ms against 4.5 ms with pbkdf2 before).
            pwhash.check_password(self.algo, "", password or b"", "")
            return IGNORE  # EMQX: an unknown user passes to the next authenticator
        stored, salt, superuser, algo = self.users[uid]
        if password is None:
            return ("deny", BAD_CREDENTIALS, "%s: user %r sent no password" % (self.name, uid))
        if not pwhash.check_password(algo or self.algo, salt, password, stored):
            return ("deny", BAD_CREDENTIALS, "%s: wrong password for user %r" % (self.name, uid))
        return ("allow", superuser, None, None)


# --- jwt ------------------------------------------------------------------------------------------

def _render_claim(value, client):
    if not isinstance(value, str):
        return value
    for name in ("clientid", "username"):
        key = "${" + name + "}"
        if key in value:
            v = _text(getattr(client, name, None))
            if v is None:
                return None
            value = value.replace(key, v)
    return value


class JwtAuth:
    name = "jwt"

    def __init__(self, cfg, read_file, log):
        self.source = cfg.get("from", "password")
        if self.source not in ("password", "username"):
            raise ConfigError("authentication.from: expected password|username, got %r" % (self.source,))
        from gatemq import jwt
        self.verifier = jwt.Verifier(cfg, read_file)
        self.leeway = cfg.get("leeway", 0)
        self.verify_claims = cfg.get("verify_claims", {}) or {}  # the schema makes it a string map
        self.acl_claim_name = cfg.get("acl_claim_name", "acl")
        self.disconnect_after_expire = cfg.get("disconnect_after_expire", True)
        spec = cfg.get("public_key")
        # A public_key that is not PEM text is a file (gatemq.jwt reads it the same way).
        self.files = ("jwt public_key %r" % spec,) if isinstance(spec, str) and spec \
            and "-----BEGIN" not in spec and self.verifier.alg != "HS256" else ()

    def authenticate(self, client, now):
        token = getattr(client, self.source, None)
        if not token:
            return IGNORE  # EMQX: no token, no opinion
        from gatemq import jwt, acl
        try:
            claims = self.verifier.verify(token)
            exp = jwt.check_times(claims, now, self.leeway)
            for key in self.verify_claims:
                want = _render_claim(self.verify_claims[key], client)
                if want is None:
                    raise AuthError("claim %r needs a client value that is missing" % key)
                if key not in claims:
                    raise AuthError("token has no %r claim" % key)
                if claims[key] != want:
                    raise AuthError("token claim %r does not match this client" % key)
            rules = None
            if self.acl_claim_name in claims:
                rules = acl.compile_claim(claims[self.acl_claim_name])
        except AuthError as e:
            return ("deny", BAD_CREDENTIALS, "jwt: %s" % e)
        su = claims.get("is_superuser", False)
        expire = exp if self.disconnect_after_expire else None
        return ("allow", su is True or su == "true", rules, expire)


# --- the chain -------------------------------------------------------------------------------------

def _build(cfg, i):
    mech = cfg.get("mechanism")
    if mech == "password_based":
        backend = cfg.get("backend", "built_in_database")
        if backend != "built_in_database":
            raise ConfigError("authentication[%d].backend: only built_in_database is supported, got %r" % (i, backend))
        return PasswordDb
    if mech == "jwt":
        return JwtAuth
    raise ConfigError("authentication[%d].mechanism: expected password_based|jwt, got %r" % (i, mech))


class Authenticator(Gate):
    def __init__(self, authn_list_cfg, read_file, wallclock, log):
        Gate.__init__(self, wallclock, log)
        self.chain = []
        for i, cfg in enumerate(authn_list_cfg or []):
            cls = _build(cfg, i)
            if not cfg.get("enable", True):
                continue
            self.chain.append(cls(cfg, read_file, log))

    # No reload() here: Broker.reload_auth builds a whole new Authenticator and swaps it in only
    # when every file of the chain was read without error.

    def _run_chain(self, client):
        now = self.wallclock()
        for a in self.chain:
            res = a.authenticate(client, now)
            if res[0] == "ignore":
                continue
            if res[0] == "deny":
                return res[1], res[2]
            client.is_superuser = res[1]
            client.acl = res[2]
            client.auth_expire_at = res[3]
            return OK, "accepted by %s" % a.name
        return NOT_AUTHORIZED, "no authenticator in the chain recognised the client"
