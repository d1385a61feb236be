#!/usr/bin/env bash
# Installs what Strata needs beyond a Rust toolchain, once; re-runs take a second.
#
#   scripts/setup.sh           libtorch 2.13.0 (CPU use) into .deps/torch
#   scripts/setup.sh --cuda    also the CUDA libraries libtorch needs to use a GPU
#
# libtorch comes from the Python package registry: the torch==2.13.0 wheel holds a
# complete libtorch (headers and shared libraries), installed with --no-deps into a
# project-local folder, plus the two CUDA runtime libraries its CPU library links
# against (libcudart, libcupti). .cargo/config.toml points LIBTORCH there and the
# build scripts embed it as an rpath, so nothing needs exporting. A LIBTORCH already
# set in the environment is used as it is and nothing is installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
TORCH_VERSION="2.13.0"
CPU_PACKAGES=("torch==$TORCH_VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85")
# The CUDA set torch==2.13.0 declares as its dependencies on Linux.
CUDA_PACKAGES=(
  "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3"
  "nvidia-cudnn-cu13==9.20.0.48" "nvidia-cusparselt-cu13==0.8.1" "nvidia-nccl-cu13==2.29.7"
  "nvidia-nvshmem-cu13==3.4.5"
)

want_cuda=0
for arg in "$@"; do
  case "$arg" in
    --cuda) want_cuda=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (expected --cuda)" >&2; exit 2 ;;
  esac
done

say() { echo "setup: $*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi
}

apt_install() {
  say "installing Debian packages: $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# Rust is the one prerequisite we do not install.
if ! command -v cargo >/dev/null; then
  say "cargo not found: install Rust (https://rustup.rs) and run this again"; exit 1
fi
# torch-sys compiles a C++ wrapper.
command -v c++ >/dev/null || apt_install g++
command -v pkg-config >/dev/null || true

if [[ -n "${LIBTORCH:-}" ]]; then
  if [[ ! -e "$LIBTORCH/lib/libtorch_cpu.so" ]]; then
    say "LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so; unset it to let setup install libtorch"; exit 1
  fi
  say "using LIBTORCH=$LIBTORCH"
  exit 0
fi

pip_install() { # target, packages...
  local target="$1"; shift
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$target" "$@"
}

if ! python3 -m pip --version >/dev/null 2>&1; then
  apt_install python3-pip
fi

STAMP="$DEPS/torch/.strata-libtorch-$TORCH_VERSION"
if [[ ! -f "$STAMP" ]]; then
  say "installing libtorch $TORCH_VERSION from the Python package registry into .deps/torch (~530 MB, once)"
  rm -rf "$DEPS/torch.partial"
  mkdir -p "$DEPS"
  pip_install "$DEPS/torch.partial" --no-deps "${CPU_PACKAGES[@]}"
  if [[ ! -e "$DEPS/torch.partial/torch/lib/libtorch_cpu.so" ]]; then
    say "the torch wheel did not contain torch/lib/libtorch_cpu.so"; exit 1
  fi
  rm -rf "$DEPS/torch"
  mv "$DEPS/torch.partial" "$DEPS/torch"
  touch "$STAMP"
fi

CUDA_STAMP="$DEPS/torch/.strata-cuda-$TORCH_VERSION"
if [[ $want_cuda -eq 1 && ! -f "$CUDA_STAMP" ]]; then
  say "installing the CUDA libraries for libtorch $TORCH_VERSION (several GB, once)"
  pip_install "$DEPS/torch" --upgrade "${CUDA_PACKAGES[@]}"
  touch "$CUDA_STAMP"
fi
say "libtorch $TORCH_VERSION ready in .deps/torch/torch"
