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
            # Not from the config file, so not checked by its schema: normalise checks it.
            try:
                algo = pwhash.normalise(algo)
            except ConfigError as e:
                raise ConfigError("%s:%d: algorithm: %s" % (source, n, e))
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

    # cfg: one password_based entry of the loaded config's authentication list, checked and
    # completed by gatemq.config's schema (user_id_type, password_hash_algorithm, user_file).
    def __init__(self, cfg, read_file, log):
        self.log = log
        self.user_id_type = cfg["user_id_type"]
        self.algo = cfg["password_hash_algorithm"]
        # user_file is gatemq's key; the config schema requires it (EMQX's bootstrap_file is an
        # unknown key there).
        self.path = cfg["user_file"]
        self.read_file = read_file
        self.users = {}
        self.reload()

    def reload(self):
        try:
            data = self.read_file(self.path)
        except Exception as e:
            raise ConfigError("authentication.user_file: cannot read %r: %s" % (self.path, e))
        self.users = parse_users(data, self.path)

    @property
    def files(self):
        # What Broker.reload_auth reports as re-read.
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

    # cfg: one jwt entry of the loaded config's authentication list, checked by the schema.
    def __init__(self, cfg, read_file, log):
        self.source = cfg["from"]
        from gatemq import jwt
        self.verifier = jwt.Verifier(cfg, read_file)
        self.leeway = cfg["leeway"]
        self.verify_claims = cfg["verify_claims"]
        self.acl_claim_name = cfg["acl_claim_name"]
        self.disconnect_after_expire = cfg["disconnect_after_expire"]
        spec = cfg["public_key"]
        # A public_key that is not PEM text is a file (gatemq.jwt reads it the same way).
        self.files = ("jwt public_key %r" % spec,) if spec and "-----BEGIN" not in spec \
            and self.verifier.alg != "HS256" else ()

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

class Authenticator(Gate):
    # authn_list_cfg: the loaded config's authentication list. The schema has already refused
    # unknown mechanisms and backends (password_based is built_in_database only).
    def __init__(self, authn_list_cfg, read_file, wallclock, log):
        Gate.__init__(self, wallclock, log)
        self.chain = []
        for cfg in authn_list_cfg:
            if cfg["enable"]:
                cls = JwtAuth if cfg["mechanism"] == "jwt" else PasswordDb
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
