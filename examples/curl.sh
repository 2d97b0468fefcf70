#!/usr/bin/env bash
# One cross-entropy call with curl: a (B, T, V) = (1, 2, 3) batch, the second position padding.
# XENT_URL points at a running xent (default http://localhost:8080).
set -euo pipefail
url="${XENT_URL:-http://localhost:8080}"
curl -sS --fail-with-body "$url/v1/cross-entropy" \
  -H 'content-type: application/json' \
  -d '{"logits": [[[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]], "targets": [[0, -100]], "outputs": ["token_losses", "gradients"]}'
echo
