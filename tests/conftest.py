import os
import sys

# Core tests import their shared helpers as top-level modules, as tests/mp_run.py does on MicroPython.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "core"))
