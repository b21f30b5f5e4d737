#!/usr/bin/env bash
# Build llama.cpp's ggml-rpc-server and llama-server with the RPC backend (-DGGML_RPC=ON, CPU only)
# from the llama.cpp sources vendored in the llama-cpp-python sdist of a pinned version, into a
# cache directory outside the repository; print the directory holding the two binaries.
#
#   scripts/build_rpc.sh                      # pip downloads the pinned sdist from PyPI
#   SDIST=/path/llama_cpp_python-0.3.36.tar.gz scripts/build_rpc.sh
#   PLAN_DEPLOY_RPC_BIN="$(scripts/build_rpc.sh | tail -1)" python -m pytest -q -m rpc
#
# A second run with the same version reuses the cache and builds nothing. The first took 12 minutes
# on 2 cores (211 compile steps, llama-server is most of it); it runs under `nice`, two jobs.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${PLAN_DEPLOY_RPC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plan-deploy/llama-cpp-rpc-$VERSION}"
BIN="$CACHE/bin"
if [ -x "$BIN/ggml-rpc-server" ] && [ -x "$BIN/llama-server" ]; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$CACHE/src"
if [ -z "${SDIST:-}" ]; then
    "${PYTHON:-python3}" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" \
        -d "$CACHE/sdist" >&2
    SDIST="$(ls "$CACHE"/sdist/llama_cpp_python-"$VERSION".tar.gz)"
fi
SRC="$CACHE/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$SRC/CMakeLists.txt" ] || tar -xzf "$SDIST" -C "$CACHE/src" "llama_cpp_python-$VERSION/vendor/llama.cpp"
# Static binaries, generic x86/ARM code (no -march=native: the cache may move between machines),
# no HTTPS, no web UI (its prebuilt assets would be downloaded), no tests or examples.
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
cmake -S "$SRC" -B "$CACHE/build" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_RPC=ON -DGGML_NATIVE=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
nice -n 19 cmake --build "$CACHE/build" -j "${JOBS:-2}" --target ggml-rpc-server llama-server >&2
mkdir -p "$BIN"
cp "$CACHE/build/bin/ggml-rpc-server" "$CACHE/build/bin/llama-server" "$BIN/"
echo "$BIN"
