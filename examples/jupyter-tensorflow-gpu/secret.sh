#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Create the notebook's token Secret without writing the token into any file or the
# shell history: it is read from the terminal (or generated when stdin is not one).
set -eu
NAMESPACE="${NAMESPACE:-default}"
if [ -t 0 ]; then
  printf 'Jupyter token (password): ' >&2; stty -echo; read -r TOKEN; stty echo; printf '\n' >&2
else
  TOKEN="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
  echo "generated a random token; read it back with:" >&2
  echo "  kubectl -n $NAMESPACE get secret tf-notebook -o jsonpath='{.data.token}' | base64 -d" >&2
fi
printf '%s' "$TOKEN" | kubectl -n "$NAMESPACE" create secret generic tf-notebook --from-file=token=/dev/stdin
