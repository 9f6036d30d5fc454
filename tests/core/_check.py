# Helpers for core tests that must run under both pytest and tests/mp_run.py (MicroPython).


def raises(exc, fn, *args, **kw):
    # Returns the exception so a test can check its message; fails when nothing is raised.
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))
