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
    python_requires=">=3.10",
    # TensorFlow comes in through one extra, `cpu` or `gpu`: the two wheels hold the same files and
    # must never both land in one environment (see docs/install.md).
    install_requires=[
        "tensorboard>=2.13",  # `tensorboard --logdir logs`
        "numpy>=1.23",
        "matplotlib>=3.5",  # learning curves and evaluation reports (scripts/plot.py, --report)
        "Pillow>=9",  # reading image files to classify (scripts/predict.py)
        "tqdm>=4.60",  # progress bars during training
    ],
    extras_require={
        # Used through tensorflow.compat.v1 (graph mode). On x86-64 Linux the CPU-only wheel is
        # half the download of the GPU-capable one and never probes for CUDA (docs/install.md);
        # on Windows the two are the same size; on macOS and ARM only `tensorflow` exists.
        "cpu": [
            "tensorflow-cpu>=2.13,<3; sys_platform != 'darwin' and "
            "(platform_machine == 'x86_64' or platform_machine == 'AMD64')",
            "tensorflow>=2.13,<3; sys_platform == 'darwin' or "
            "(platform_machine != 'x86_64' and platform_machine != 'AMD64')",
        ],
        "gpu": ["tensorflow[and-cuda]>=2.13,<3; sys_platform == 'linux'"],  # NVIDIA, Linux only
        "test": ["pytest>=7"],
        # PyTorch, the benchmark's outside reference (scripts/bench.py, tests/test_torch_mirror.py).
        # Install a CPU build first (docs/install.md): the default Linux wheel pulls GBs of CUDA
        # libraries.
        "bench": ["torch>=2.0"],
    },
)
