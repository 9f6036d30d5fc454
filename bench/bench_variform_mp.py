"""Heap and time cost of client attributes on the MicroPython port (issue 15: "the evaluator is
small and lazily imported, and its heap cost is measured").

Runs the MicroPython unix port from build/mpy/lib (the .mpy files a board gets; `make
firmware-files` first) and reports, after gc.collect():

  import       gatemq.variform and gatemq.clientattrs, imported only when the config has an
               expression (a board without one never pays this)
  per form     heap per compiled expression, over the six of tests/host/test_tls_lifecycle.py's
               client_attrs_init (what stays allocated for the broker's life)
  per CONNECT  the time to evaluate all six for one client (the unix port on this machine; a
               board is some 10x slower)

    .venv/bin/python bench/bench_variform_mp.py [--connects N]
"""
import argparse
import os
import subprocess
import sys

from bench_dashboard_heap import LIB, MP     # the interpreter and the .mpy files a board gets

DRIVER = """
import gc, sys, time
N = int(sys.argv[1])
EXPRS = [
    "nth(2, tokens(cn, '.'))",
    "cert_san.dns",
    "nth(1, tokens(cert_san.dns, ','))",
    "cert_san.ip",
    "cert_san.email",
    "concat([upper(client_attrs.site), '-', substr(hash('sha256', cn), 0, 8)])",
]
gc.collect()
h0 = gc.mem_alloc()
from gatemq import variform, clientattrs
gc.collect()
h1 = gc.mem_alloc()
forms = [clientattrs._form(e) for e in EXPRS]
gc.collect()
h2 = gc.mem_alloc()
b = {"clientid": "sensor1", "username": None, "cn": "sensor1.site7.acme", "dn": "CN=sensor1.site7.acme",
     "cert_san": {"dns": "sensor1.site7.acme.lan,s1.lan", "ip": "10.7.0.1", "email": "ops@acme.lan"},
     "client_attrs": {}, "user_property": {}, "listener": "ssl:default"}
t0 = time.ticks_us()
for _ in range(N):
    attrs = {}
    b["client_attrs"] = attrs
    for i, f in enumerate(forms):
        attrs[str(i) if i else "site"] = variform.render(f, b)
t1 = time.ticks_us()
print(h1 - h0, (h2 - h1) // len(EXPRS), time.ticks_diff(t1, t0) / N)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connects", type=int, default=2000)
    a = ap.parse_args(argv)
    if not os.path.exists(os.path.join(LIB, "gatemq", "variform.mpy")):
        sys.exit("bench_variform_mp: build/mpy/lib has no gatemq/variform.mpy: run make firmware-files")
    out = subprocess.run([MP, "-X", "heapsize=4M", "-c", DRIVER, str(a.connects)],
                         env=dict(os.environ, MICROPYPATH=LIB), capture_output=True, text=True, timeout=300)
    if out.returncode:
        sys.exit("bench_variform_mp: micropython failed:\n" + out.stderr)
    imp, per_form, us = out.stdout.split()
    print("MicroPython port (unix, .mpy from build/mpy/lib), client_attrs_init with 6 expressions")
    print("  import gatemq.variform + gatemq.clientattrs   %6.1f KB of heap" % (int(imp) / 1024))
    print("  per compiled expression                       %6.0f bytes" % int(per_form))
    print("  evaluate all 6 for one CONNECT                %6.0f us (%d CONNECTs)" % (float(us), a.connects))


if __name__ == "__main__":
    main()
