#!/bin/bash
# Installs a checkout's Python distribution (ironic-dpu: the Ironic hardware
# type with its entry points and the Nova driver nova.virt.ironic_dpu) with
# Debian's pip, offline, into a --target directory that the suites put on
# the services' PYTHONPATH: Ironic's stevedore and Nova's loader find the
# driver as after `pip install .`, and nothing is written outside the run.
# pip builds in the source tree (build/, *.egg-info): it builds from a copy,
# so the checkout stays clean and parallel runs share nothing. (sourced)

# pyinstall_dpu SRC DEST LOG
pyinstall_dpu() {
  local src=$1 dest=$2 log=$3 tmp rc=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/ironic-dpu-src.XXXXXX") || return 1
  { tar -C "$src" --exclude=__pycache__ --exclude='*.egg-info' -cf - setup.py setup.cfg ironic_dpu nova |
      tar -C "$tmp" -xf - &&
    /usr/bin/python3 -m pip install --no-deps --no-index --no-build-isolation --disable-pip-version-check \
      --root-user-action=ignore --target "$dest" "$tmp"; } > "$log" 2>&1 || rc=1
  rm -rf "$tmp"
  [ $rc = 0 ] || { tail -20 "$log" >&2; echo "pip install of $src into $dest failed (log: $log)" >&2; }
  return $rc
}
