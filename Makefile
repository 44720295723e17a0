# The two commands a newcomer needs (each does its own set-up on a fresh Debian machine):
#   make demo   service + detector + dashboard on the bundled model and a demo camera
#   make test   the whole test suite (real PostgreSQL, real Chromium, a real training run)
.PHONY: demo test lint bench setup-demo setup-test

VENV ?= .venv
PY := $(VENV)/bin/python

setup-demo:
	scripts/install.sh python

setup-test:
	scripts/install.sh system
	scripts/install.sh python dev,train,postgres

# make demo PORT=8010: another port when 8000 is taken (without PORT the next free one is used)
demo: setup-demo
	$(VENV)/bin/siteguard demo $(if $(PORT),--port $(PORT))

test: setup-test
	SITEGUARD_TEST_POSTGRES_URL=$$(scripts/postgres-test-db.sh | tail -n 1) \
	YOLO_OFFLINE=1 $(PY) -m pytest -ra

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup-test
	$(PY) -m bench
