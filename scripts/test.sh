#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone, installing what the tests need first:
# moto server (PyPI) in .venv-moto for the AWS adapter and end-to-end tests, the AWS CLI
# (PyPI, in .venv-awscli when it is not on the PATH) for a Terraform test, and headless
# Chromium and promtool (Debian) for the dashboard and metrics tests.
# Used by the README's quick start and by CI (.ci/run). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
say() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust 1.94 or newer from https://rustup.rs" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 not found; install Python 3.9+ (Debian: apt-get install -y python3 python3-venv)" >&2
  exit 1
fi

# moto server, pinned, in a virtualenv of its own (never the system's site-packages).
if ! .venv-moto/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  say "installing moto[server]==$MOTO_VERSION into .venv-moto"
  rm -rf .venv-moto
  python3 -m venv .venv-moto
  .venv-moto/bin/python -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# The AWS CLI (PyPI awscli), for the Terraform test that runs the external-service module's
# bootstrap script against moto: the one on the PATH, or else one in a virtualenv of its own
# (never in .venv-moto, whose botocore moto pins).
if ! command -v aws >/dev/null 2>&1 && [ ! -x .venv-awscli/bin/aws ]; then
  say "installing awscli into .venv-awscli"
  rm -rf .venv-awscli
  python3 -m venv .venv-awscli
  .venv-awscli/bin/python -m pip install --quiet --disable-pip-version-check awscli
fi

# Headless Chromium (the dashboard tests) and promtool (the /metrics tests), both Debian
# packages; promtool comes with `prometheus`. Installed only when missing, as root or through
# passwordless sudo; otherwise the script says how and goes on (those tests then fail with
# the same hint).
if ! command -v chromium >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  hint="apt-get install -y --no-install-recommends chromium prometheus"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    as_root=(none)
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "${as_root[*]}" = none ]; then
    say "warning: chromium or promtool is missing and cannot be installed from here; run: $hint"
  else
    say "installing chromium and prometheus (for promtool) with apt-get"
    if "${as_root[@]}" apt-get update -qq \
      && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends chromium prometheus >/dev/null; then
      # Only promtool is wanted: on a host with systemd the package starts a Prometheus
      # server, which the tests do not need.
      if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        "${as_root[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
      fi
    else
      say "warning: installing chromium and prometheus failed; run: $hint"
    fi
  fi
fi

# Terraform (with its provider mirror) is not installable from the package registries: where
# it is missing, the Terraform tests are skipped, and said so before and after the run (they
# fail instead when run without this script and without SWITCHYARD_SKIP_TERRAFORM).
terraform_missing=""
if ! command -v terraform >/dev/null 2>&1; then
  terraform_missing="terraform is not on PATH"
elif [ ! -d "${SWITCHYARD_TF_PLUGIN_MIRROR:-/opt/tf-plugins}" ]; then
  terraform_missing="the Terraform provider mirror ${SWITCHYARD_TF_PLUGIN_MIRROR:-/opt/tf-plugins} is missing"
fi
terraform_banner() {
  say "=================================================================="
  say "WARNING: $terraform_missing: the Terraform tests are SKIPPED (they pass without"
  say "checking anything). Terraform 1.11 and the AWS provider mirror are not installable"
  say "from the package registries; see tests/it/terraform.rs."
  say "=================================================================="
}
if [ -n "$terraform_missing" ]; then
  export SWITCHYARD_SKIP_TERRAFORM=1
  terraform_banner
fi

# cargo-nextest runs the suite faster and reports clearly; fall back to cargo test. The whole
# workspace: the simulation crate has unit tests of its checks.
status=0
if cargo nextest --version >/dev/null 2>&1; then
  say "running the test suite (cargo nextest)"
  cargo nextest run --workspace --locked --no-fail-fast "$@" || status=$?
else
  say "running the test suite (cargo test)"
  cargo test --workspace --locked --no-fail-fast "$@" || status=$?
fi
if [ -n "$terraform_missing" ]; then
  terraform_banner
fi
exit "$status"
