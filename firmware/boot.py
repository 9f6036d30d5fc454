# gatemq board boot: quiet radio debug output and start with a clean heap. Wi-Fi and the broker
# start in main.py, where an error can be caught and the board restarted.
import gc

try:
    import esp

    esp.osdebug(None)
except ImportError:
    pass

gc.collect()
