# gatemq.leafpolicy: the checks both ports make on a verified client certificate, and when the
# crlfile is read again, with stat and read faked.
from gatemq.errors import ConfigError
from gatemq.leafpolicy import LeafPolicy
from _check import raises
from test_der import CRL, CRL_PEM, LEAF1, LEAF2, T_2024_02_29_12

NOW = T_2024_02_29_12 + 2 * 86400  # inside LEAF1's and the CRL's validity


class _Files:
    def __init__(self, data, mtime=0):
        self.data = data
        self.mtime = mtime
        self.reads = 0
        self.missing = False

    def stat(self, path):
        if self.missing:
            raise OSError(2, "ENOENT")
        return (self.mtime, len(self.data))

    def read(self, path):
        if self.missing:
            raise OSError(2, "ENOENT")
        self.reads += 1
        return self.data


def _policy(files, clock=None, **o):
    logs = []
    opts = {"enable_crl_check": True, "crlfile": "crl.pem"}
    opts.update(o)
    p = LeafPolicy("ssl:default", opts, files.stat, files.read, clock or (lambda: NOW),
                   lambda level, msg: logs.append((level, msg)))
    return p, logs


def test_revoked_and_good_certificates():
    p, logs = _policy(_Files(CRL))
    assert p.check(LEAF2, NOW) == "revoked" and "revoked" in p.detail
    assert p.check(LEAF1, NOW) is None and p.detail is None
    assert logs == [("info", "listener ssl:default: loaded CRL crl.pem (2 revoked)")]


def test_refusal_words():
    p, _ = _policy(_Files(CRL), enable_crl_check=False, verify_peer_ext_key_usage="serverAuth")
    assert p.crlfile is None and p.crls == ()
    assert p.check(LEAF1, NOW) == "ext_key_usage"
    p, _ = _policy(_Files(CRL), enable_crl_check=False)
    assert p.check(LEAF1, NOW + 400 * 86400) == "expired"
    assert p.check(LEAF1, T_2024_02_29_12 - 1) == "not_yet_valid"
    assert p.check(LEAF1[:40], NOW) == "bad_certificate" and p.detail
    p, _ = _policy(_Files(CRL))
    assert p.check(LEAF1, NOW + 60 * 86400) in ("crl_expired", "expired")
    # validity=False: nothing asked of the leaf, so it is not even parsed
    p = LeafPolicy("ssl:x", {}, None, None, lambda: NOW, None, validity=False)
    assert not p.active and p.check(b"junk", NOW) is None


def test_unreadable_or_broken_crlfile_at_start_is_a_config_error():
    f = _Files(b"not a CRL")
    e = raises(ConfigError, _policy, f)
    assert "listeners.ssl.default.ssl_options.crlfile crl.pem" in str(e)
    f.missing = True
    raises(ConfigError, _policy, f)


def test_crl_changed_reloads_and_keeps_the_last_good_one():
    f = _Files(CRL, mtime=NOW - 100)
    p, logs = _policy(f)
    assert not p.crl_changed() and f.reads == 1
    p.reload()
    assert f.reads == 1  # unchanged stamp: not read
    f.data, f.mtime = b"garbage", NOW - 50
    assert p.crl_changed()
    p.reload()
    assert logs[-1][0] == "error" and "keeping the previous one" in logs[-1][1]
    assert p.check(LEAF2, NOW) == "revoked"
    f.missing = True
    assert p.crl_changed()
    p.reload()
    p.reload()
    assert len([m for _, m in logs if "cannot read crlfile crl.pem" in m]) == 1  # logged once
    assert "keeping the previous CRL" in logs[-1][1] and not p.crl_changed()
    f.missing, f.data, f.mtime = False, CRL_PEM.encode(), NOW - 10
    p.reload()
    assert logs[-1] == ("info", "listener ssl:default: loaded CRL crl.pem (2 revoked)")


def test_a_file_changed_within_the_last_seconds_is_checked_again_by_content():
    # Whole-second stamps: a rewrite within the same second at the same size keeps the stamp, so a
    # recent file stays "changed" and its bytes decide.
    f = _Files(CRL, mtime=NOW)
    p, logs = _policy(f)
    assert p.crl_changed()
    p.reload()
    assert f.reads == 2 and len(logs) == 1  # same bytes: read, not parsed again, not logged


def test_the_server_certificate_expiry_warning_at_start_daily_and_after_a_reload():
    # certwatch.Watch: within WARN_DAYS of its notAfter a listener's own certificate is named in a
    # warning at the first sweep (start), again a day later, not in between; a reload with a
    # certificate far from its end is quiet, and one near its end warns at once.
    from gatemq import certwatch
    from test_der import T_2025_02_28_12, LEAF2
    logs = []
    w = certwatch.Watch("ssl:default", {}, lambda level, msg: logs.append((level, msg)))
    w.set_server(LEAF1)
    near = T_2025_02_28_12 - 10 * 86400        # 10 days before LEAF1's notAfter
    w.sweep(None, None, near)
    assert logs == [("warning", "listener ssl:default: its certificate (serial FFEEDDCCBBAA99887766554433221100) "
                     "expires at 2025-02-28T12:00:00Z; renew certfile and reload the listener")], logs
    w.sweep(None, None, near + 3600)
    assert len(logs) == 1
    w.sweep(None, None, near + 86400)
    assert len(logs) == 2 and "expires at" in logs[1][1]
    w.sweep(None, None, T_2025_02_28_12 + 60)  # a day on: past its end
    assert "expired at 2025-02-28T12:00:00Z" in logs[2][1]
    far = certwatch.server_cert(LEAF2)[0] - (certwatch.WARN_DAYS + 1) * 86400
    w.set_server(LEAF2)                         # reloaded with one more than WARN_DAYS from its end
    w.sweep(None, None, far)
    assert len(logs) == 3
    w.set_server(LEAF1)                         # the fence: a near one warns at the next sweep
    w.sweep(None, None, near + 5)
    assert len(logs) == 4


def test_anchors_are_the_cas_that_lead_to_a_root_of_the_file():
    # x509.anchors: where a chain may end without partial_chain (the MicroPython port checks the
    # top of each chain against it; mbedTLS would end one at any CA of cacertfile).
    from gatemq import der
    from gatemq.x509 import anchors, name_key
    from test_der import CA
    key = lambda d: name_key(der.parse_certificate(d).subject_der)  # noqa: E731
    assert anchors([CA]) == {key(CA)}                       # a root
    assert anchors([LEAF1]) == set()                        # issued by a CA the file lacks
    assert anchors([LEAF1, CA]) == {key(CA), key(LEAF1)}    # with its issuer's root: anchored
    assert anchors([b"not a certificate", CA]) == {key(CA)}
