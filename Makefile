# Two commands do all set-up on a fresh machine (only pyenv's Pythons needed):
#   make run    creates .venv (Python 3.10), installs the lock, runs the local pipeline
#   make test   same set-up, then the test suite (what .ci/run calls)

PYTHON_VERSION := $(shell cat .python-version)
# The interpreter that bootstraps uv: pyenv's 3.10 if present, else python3.10 on PATH.
PY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(PYTHON_VERSION)/bin/python3.10) $(shell command -v python3.10))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock setup.py | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9
# uv reads SSL_CERT_FILE; default it to the system bundle where the machine has one.
CA_BUNDLE := /etc/ssl/certs/ca-certificates.crt
ifneq ($(wildcard $(CA_BUNDLE)),)
export SSL_CERT_FILE ?= $(CA_BUNDLE)
endif
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: setup run test lint format lock clean compile image submit schema

$(STAMP):
	@test -n "$(PY)" || { echo "Python $(PYTHON_VERSION) not found: install it with 'pyenv install $(PYTHON_VERSION)'"; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	test -x $(BIN)/python || $(PY) -m uv venv --python $(PY) $(VENV)
	$(PY) -m uv pip sync --python $(BIN)/python requirements.lock
	$(PY) -m uv pip install --python $(BIN)/python --no-deps -e . --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

run: setup
	$(BIN)/python local_runner.py $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

# Infer a schema from your logs (see README "Your own logs"):
#   make schema LOGS=my_logs.yaml DATA=/path/to/logs
schema: setup
	@test -n "$(LOGS)" -a -n "$(DATA)" || { echo "set LOGS=<logs file> DATA=<data root>"; exit 1; }
	$(BIN)/python local_runner.py --logs $(LOGS) --data_root $(DATA) --bootstrap_schema $(ARGS)

# Kubeflow / Vertex AI (see README "Running on Vertex AI / Kubeflow"):
#   make image   IMAGE=<region>-docker.pkg.dev/<project>/<repo>/pipeline:<tag>
#   make compile CLOUD_CONFIG=vertex.json        -> recommender_pipeline.json
#   make submit  ARGS="vertex --project P --region R"
SPEC ?= recommender_pipeline.json
compile: setup
	@test -n "$(CLOUD_CONFIG)" || { echo "set CLOUD_CONFIG=<CloudConfig JSON file>"; exit 1; }
	$(BIN)/python kubeflow_runner.py --config $(CLOUD_CONFIG) --output $(SPEC) $(ARGS)

image:
	@test -n "$(IMAGE)" || { echo "set IMAGE=<registry>/<repo>/pipeline:<tag>"; exit 1; }
	gcloud builds submit --config cloudbuild.yaml --substitutions=_IMAGE=$(IMAGE) .

submit: setup
	$(BIN)/python scripts/submit_pipeline.py $(ARGS) --spec $(SPEC)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

lock:
	$(PY) -m uv pip compile --python-version 3.10 setup.py --extra dev --extra bench -o requirements.lock

clean:
	rm -rf $(VENV) output
