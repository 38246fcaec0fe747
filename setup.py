"""Packaging for the multi-task recommender TFX pipeline.

The runtime pins are the stack measured on the development machines (Python
3.10; see the README's set-up section); `requirements.lock` is compiled from
this file with `make lock` and is what installs use.
"""

from setuptools import find_packages, setup

RUNTIME = [
    "tfx==1.16.0",
    "tensorflow==2.16.2",
    "tf-keras==2.16.0",
    "tensorflow-recommenders==0.7.3",
    "scann==1.3.2",
    "tensorflow-serving-api==2.16.1",
    "apache-beam[gcp]==2.60.0",
    "kfp>=2.5,<3",
    "pyarrow>=10,<11",  # Parquet logs (also TFX's own)
    "pyyaml>=6,<7",  # logs files
]

DEV = ["pytest", "pytest-timeout", "pytest-xdist", "ruff"]
BENCH = ["matplotlib"]

setup(
    name="tfx-recommender",
    version="0.1.0",
    description="TFX pipeline training and shipping a multi-task TFRS recommender.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(
        include=["contracts*", "pipeline*", "components*", "models*", "serving*", "datagen*"]
    ),
    py_modules=["local_runner", "kubeflow_runner"],
    install_requires=RUNTIME,
    extras_require={"dev": DEV, "bench": BENCH},
)
