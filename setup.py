"""Builds and installs everything: the Python packages, the `algo` CLI and the C++ risk engine."""
from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def risk_core_extensions() -> list:
    """The Cython wrapper around risk_core's C++17 sources (ALGO_DEBUG_BUILD=1 for -O0 -g)."""
    pyx = ROOT / "risk_core" / "_engine.pyx"
    if not pyx.exists():
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    debug = os.environ.get("ALGO_DEBUG_BUILD") == "1"
    flags = ["-std=c++17", "-O0", "-g"] if debug else ["-std=c++17", "-O3", "-DNDEBUG"]
    sources = [str(pyx.relative_to(ROOT))] + sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "risk_core" / "src").glob("*.cpp")
    )
    extension = Extension(
        "risk_core._engine",
        sources=sources,
        include_dirs=[str(ROOT / "risk_core" / "include"), numpy.get_include()],
        language="c++",
        extra_compile_args=flags + ["-pthread"],
        extra_link_args=["-pthread"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    return cythonize([extension], language_level=3, compiler_directives={"boundscheck": False, "wraparound": False})


setup(
    name="algo-trading-pipeline",
    version="0.1.0",
    description="Autonomous multi-agent trading system on Kafka, Faust, Postgres, Redis and a C++ risk engine",
    python_requires=">=3.11",
    packages=find_packages(include=["streams", "streams.*", "ops", "ops.*", "risk_core", "risk_core.*"]),
    package_data={"ops": ["*.xml", "*.properties", "*.env", "conf/*"], "risk_core": ["*.pxd", "*.pyx", "include/*.hpp"]},
    include_package_data=True,
    install_requires=requirements(),
    ext_modules=risk_core_extensions(),
    entry_points={"console_scripts": ["algo = streams.cli:main"]},
    zip_safe=False,
)
