#!/bin/sh
# Builds one component (a workspace package) for wasm32-wasip1, release
# profile: the `[component.*.build]` command of spin.toml, for `spin up
# --build` and the local host alike.
#
# rust-toolchain.toml names the wasm32-wasip1 target, but rustup adds it only
# when it installs the toolchain itself; a toolchain that was already there
# without it would fail the first build with "can't find crate for `core`".
# So the target is added here, once, saying so.
set -eu
package="$1"
if command -v rustup > /dev/null 2>&1 \
  && ! rustup target list --installed | grep -qx wasm32-wasip1; then
  echo "spin-auth: adding the wasm32-wasip1 target (rustup target add wasm32-wasip1)" >&2
  rustup target add wasm32-wasip1 >&2
fi
exec cargo build --target wasm32-wasip1 --release -p "$package"
