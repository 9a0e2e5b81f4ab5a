"""Builds and installs everything: the Python packages, the `algo` CLI and the C++ risk engine."""
from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


def requirements(name: str = "requirements.txt") -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class build_py_with_contract(build_py):
    """Copies the message contract (schemas/avro/*.avsc) and the migrations (sql/*.sql), which live at
    the top of the repository, into the wheel as streams/_data/, where streams.resources finds them."""

    def run(self) -> None:
        super().run()
        for source, pattern, target in (("schemas/avro", "*.avsc", "schemas/avro"), ("sql", "*.sql", "sql")):
            destination = Path(self.build_lib) / "streams" / "_data" / target
            destination.mkdir(parents=True, exist_ok=True)
            for path in sorted((ROOT / source).glob(pattern)):
                self.copy_file(str(path), str(destination / path.name))


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
    package_data={"ops": ["*.xml", "*.properties", "*.env", "conf/*"], "streams.bridge": ["static/*"],
                  "streams.analyst": ["data/*.csv", "data/*.json", "data/*.md", "data/scorer/*"],
                  "streams.memory": ["data/policy/*"],
                  "risk_core": ["*.pxd", "*.pyx", "include/risk_core/*.hpp"]},
    include_package_data=True,
    install_requires=requirements(),
    # eval: libCacheSim baselines for `algo memory evaluate` (GPL-3.0, never imported by the pipeline)
    extras_require={"test": requirements("requirements-test.txt"), "eval": ["libcachesim==0.3.5"]},
    cmdclass={"build_py": build_py_with_contract},
    ext_modules=risk_core_extensions(),
    entry_points={"console_scripts": ["algo = ops.cli:main"]},
    zip_safe=False,
)
