# Pipeline image for Kubeflow Pipelines v2 / Vertex AI and the Dataflow SDK container.
# Base: the public TFX image of the pinned TFX version (Python 3.10, Beam SDK boot
# entrypoint, kubeflow_v2_run_executor). Build with `make image` (Cloud Build).
FROM gcr.io/tfx-oss-public/tfx:1.16.0

ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /pipeline

# Dependencies first (cached layer): exactly the versions the tests ran with.
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir uv==0.13.9 \
 && python -m uv pip install --system --no-cache -r requirements.lock

# The project: its packages and the curated schemas
# (pipeline.cloud.IMAGE_SCHEMA_DIR = /pipeline/schema).
COPY setup.py local_runner.py kubeflow_runner.py ./
COPY contracts/ contracts/
COPY components/ components/
COPY models/ models/
COPY pipeline/ pipeline/
COPY serving/ serving/
COPY datagen/ datagen/
COPY schema/ schema/
COPY configs/ configs/
RUN python -m pip install --no-cache-dir --no-deps . \
 && python -c "import pipeline.pipeline, models.entrypoints, components.recommender_pusher.executor"
