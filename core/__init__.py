# gatemq core: sans-IO, dependency-free, runs on CPython and MicroPython.
__version__ = "0.1.0"
