from setuptools import find_packages, setup

setup(
    name="lstm_mnist",
    version="0.1.0",
    description="A hand-written LSTM in TensorFlow 1 graph mode that reads MNIST digits row by row",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lstm_mnist", "lstm_mnist.*"]),
    # The verified MNIST copy ships with the package: training needs no network.
    package_data={"lstm_mnist": ["mnist/*"]},
    python_requires=">=3.9",
    install_requires=[
        "tensorflow>=2.13,<3",  # used through tensorflow.compat.v1 (graph mode)
        "tensorboard>=2.13",
        "numpy>=1.23",
        "matplotlib>=3.5",  # learning curves and evaluation reports (scripts/plot.py, --report)
        "Pillow>=9",  # reading image files to classify (scripts/predict.py)
        "tqdm>=4.60",  # progress bars during training
    ],
    extras_require={
        "test": ["pytest>=7"],
        # PyTorch, the benchmark's outside reference (scripts/bench.py, tests/test_torch_mirror.py).
        # Install a CPU build first (README): the default Linux wheel pulls GBs of CUDA libraries.
        "bench": ["torch>=2.0"],
    },
)
