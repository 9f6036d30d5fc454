# Mutated DER into every parsing entry point: only DerError may come out, each call does bounded work
# (counted in Python calls, not wall time, so a loaded CI machine cannot fail it), and adversarial
# inputs do not make the parser allocate far beyond their own size.
import sys
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatemq import der, peercert, x509
from gatemq.errors import CertRejected, DerError
from test_der import CA, CRL, CRL_PEM, LEAF1, LEAF2, atv, cert, name, oid, rdn, tlv

RICH = cert(subject=name(rdn(atv("2.5.4.3", "a"), atv("0.9.2342.19200300.100.1.1", b"\x00a", 0x1E)),
                         rdn(atv("2.5.4.10", b"\x00\x00\x00b", 0x1C)), rdn(atv("2.5.4.11", b"\xe9", 0x14)),
                         rdn(tlv(0x30, oid("1.2.3") + tlv(0x30, tlv(0x02, b"\x01"))))))
SEEDS = [LEAF1, LEAF2, CA, CRL, RICH]


def mutate(seed, ops):
    b = bytearray(seed)
    for kind, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] ^= 1 << (val % 8)
        elif kind == 1:
            b[i] = val
        elif kind == 2:
            b.insert(i, val)
        elif kind == 3:
            del b[i]
        elif kind == 4:
            del b[i:]
        else:  # length bytes are where DER faults live: nudge the byte after a tag-looking one
            b[i] = (b[i] + (val % 3) - 1) & 0xFF
    return bytes(b)


# The costliest input among the 4,000 mutations and the adversarial cases makes 3,920 calls; a parser that
# loops on a bad length or nests without bound makes orders of magnitude more.
CALLS_MAX = 200_000


def only_der_errors(fn, *args):
    calls = [0]

    def count(frame, event, arg):
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        fn(*args)
    except (DerError, CertRejected):
        pass
    finally:
        sys.setprofile(None)
    assert calls[0] < CALLS_MAX, (fn, calls[0])


OPS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=4000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), OPS)
def test_mutated_der_raises_only_der_error(seed, ops):
    b = mutate(seed, ops)
    only_der_errors(der.parse_certificate, b)
    only_der_errors(der.parse_crl, b)
    for mode in ("dn", "cn"):
        only_der_errors(peercert.identity, b, mode)
        only_der_errors(peercert.is_unsafe, b, mode)
    only_der_errors(peercert.subject_rfc2253, b)
    only_der_errors(peercert.first_cn, b)
    only_der_errors(x509.check_client, b, CA, x509.load_crls([CRL]), "clientAuth", 1709208000)
    only_der_errors(x509.load_crls, [b])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(OPS)
def test_mutated_pem_raises_only_der_error(ops):
    text = mutate(CRL_PEM.encode(), ops)
    only_der_errors(der.pem_to_der, text)
    only_der_errors(x509.load_crls, text)


def _peak(fn, b):
    tracemalloc.start()
    try:
        fn(b)
    except DerError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_adversarial_inputs_are_bounded():
    deep = tlv(0x04, "x")
    for _ in range(der.MAX_DEPTH - 6):
        deep = tlv(0x30, deep)
    cases = [
        cert(subject=name(*[rdn(atv("2.5.4.3", "x")) for _ in range(300)])),           # many RDNs
        cert(subject=name(rdn(tlv(0x30, tlv(0x06, b"\x2a" + b"\x81" * 19 + b"\x01") + tlv(0x0C, "v"))))),
        cert(subject=name(rdn(tlv(0x30, oid("1.2.3") + deep)))),                         # deep but legal
        cert(serial=b"\x01" * 2000),                                                    # huge serial
        b"\x30\x84\x7f\xff\xff\xff" + bytes(100),                                       # length lies
        cert(subject=name(rdn(atv("2.5.4.3", b"\x00\x00\x00\x41" * 1000, 0x1C)))),     # long UCS-4
    ]
    for b in cases:
        for fn in (der.parse_certificate, lambda x: peercert.identity(x, "dn"), peercert.subject_rfc2253):
            peak = _peak(fn, b)
            only_der_errors(fn, b)
            assert peak < 40 * len(b) + 64 * 1024, (fn, len(b), peak)
