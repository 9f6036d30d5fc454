# Runs the core's unit tests under MicroPython (no pytest there): every test_* function of every
# tests/core/test_*.py module. The same files are collected by pytest on CPython.
import sys
import os

try:
    import gc
except ImportError:
    gc = None


def main(folder):
    names = sorted(n[:-3] for n in os.listdir(folder) if n.startswith("test_") and n.endswith(".py"))
    if len(sys.argv) > 2:
        names = [n for n in names if n in sys.argv[2:]]
    passed = failed = 0
    for name in names:
        try:
            mod = __import__(name)
        except Exception as e:
            failed += 1
            print("FAIL import", name, repr(e))
            sys.print_exception(e) if hasattr(sys, "print_exception") else None
            continue
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %r" % (name, attr, e))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(e)
            if gc:
                gc.collect()
    print("micropython: %d passed, %d failed" % (passed, failed))
    if failed or not passed:
        sys.exit(1)


main(sys.argv[1] if len(sys.argv) > 1 else "tests/core")
