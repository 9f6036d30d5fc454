# Password hashing: HMAC/PBKDF2 against RFC test vectors, EMQX salt positions, constant-time compare.
import binascii
import hashlib

from gatemq import config, pwhash
from gatemq.errors import ConfigError
from _check import raises


def hx(b):
    return binascii.hexlify(b).decode()


def test_hmac_sha256_rfc4231_case_1_and_long_key():
    assert hx(pwhash.hmac_sha256(b"\x0b" * 20, b"Hi There")) == \
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    # case 6: a key longer than the block is hashed first
    assert hx(pwhash.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")) == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_pbkdf2_sha256_known_vectors():
    # RFC 7914 section 11 (PBKDF2-HMAC-SHA256)
    assert hx(pwhash.pbkdf2_sha256(b"passwd", b"salt", 1, 64)) == (
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
    assert hx(pwhash.pbkdf2_sha256(b"password", b"salt", 2, 32)) == \
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"


def test_sha256_salt_prefix_suffix_disable_as_emqx():
    def h(data):
        return hx(hashlib.sha256(data).digest())
    assert pwhash.hash_password({"name": "sha256", "salt_position": "prefix"}, "s4lt", "pw") == h(b"s4ltpw")
    assert pwhash.hash_password({"name": "sha256", "salt_position": "suffix"}, "s4lt", "pw") == h(b"pws4lt")
    assert pwhash.hash_password({"name": "sha256", "salt_position": "disable"}, "s4lt", "pw") == h(b"pw")
    # EMQX's default salt position for sha256 is prefix
    assert pwhash.hash_password(pwhash.normalise({"name": "sha256"}), "s", "pw") == h(b"spw")


def test_md5_and_plain():
    assert pwhash.hash_password({"name": "md5", "salt_position": "suffix"}, "x", "pw") == \
        hx(hashlib.md5(b"pwx").digest())
    assert pwhash.hash_password(pwhash.normalise({"name": "plain"}), "", "secret") == "secret"


def test_pbkdf2_algorithm_hex_output():
    algo = {"name": "pbkdf2", "mac_fun": "sha256", "iterations": 2}
    assert pwhash.hash_password(algo, "salt", "password") == \
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"


def test_check_password_accepts_right_refuses_wrong():
    algo = {"name": "sha256", "salt_position": "suffix"}
    stored = pwhash.hash_password(algo, "abc", "right")
    assert pwhash.check_password(algo, "abc", b"right", stored)
    assert pwhash.check_password(algo, "abc", b"right", stored.upper())
    assert not pwhash.check_password(algo, "abc", b"wrong", stored)
    assert not pwhash.check_password(algo, "abd", b"right", stored)


def test_equal_is_exact():
    assert pwhash.equal(b"abc", b"abc")
    assert not pwhash.equal(b"abc", b"abd")
    assert not pwhash.equal(b"abc", b"abcd")
    assert not pwhash.equal(b"", b"a")
    assert pwhash.equal("", b"")


def test_bad_algorithms_are_config_errors():
    # normalise checks what does not come through the config schema: a users file's `algorithm`.
    assert "name" in str(raises(ConfigError, pwhash.normalise, {"name": "bcrypt2"}))
    assert "mac_fun" in str(raises(ConfigError, pwhash.normalise, {"name": "pbkdf2", "mac_fun": "sha512"}))
    assert "iterations" in str(raises(ConfigError, pwhash.normalise, {"name": "pbkdf2", "iterations": 0}))
    assert "salt_position" in str(raises(ConfigError, pwhash.normalise, {"name": "md5", "salt_position": "middle"}))


def test_new_salt_uses_given_randomness():
    s = pwhash.new_salt(lambda n: bytes(range(n)), 4)
    assert s == "00010203"


def test_config_parser_output_is_accepted():
    # gatemq.config gives dk_length = None when it is not set: EMQX's default, the MAC's length.
    cfg = config.load("authentication = [{mechanism = password_based, backend = built_in_database, "
                      'user_file = "u", password_hash_algorithm {name = pbkdf2, iterations = 2}}]')
    algo = cfg["authentication"][0]["password_hash_algorithm"]
    assert algo["dk_length"] is None
    assert len(pwhash.hash_password(algo, "salt", "password")) == 64
    assert pwhash.hash_password(algo, "salt", "password") == \
        pwhash.hash_password(pwhash.normalise(dict(algo, dk_length=32)), "salt", "password")
