#!/usr/bin/env bash
# Every check: lint, types, the core and integration tests, the examples and the notebook.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
integrations=()
with_tests=()
for d in integrations/*/; do
  [ -f "$d/pyproject.toml" ] || continue
  integrations+=(-e "${d%/}")
  with_tests+=(-e "${d%/}[test]")
done
# Two steps: the integrations depend on each other by name (the LlamaIndex distributions share
# llama-index-embeddings-omniretrieve), and pip only finds a local project named in another's
# extra once it is installed.
"${PIP[@]}" -e ".[dev]" "${integrations[@]}"
"${PIP[@]}" "${with_tests[@]}"

# The gallery test renders in headless Chromium (Debian's package); install it where missing.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"; mypy
for d in integrations/*/; do [ -f "$d/pyproject.toml" ] && (cd "$d" && mypy); done

echo "== examples"
for f in examples/*.py; do [ -e "$f" ] || continue; echo "-- $f"; python "$f" >/dev/null; done

echo "== tests"
test_dirs=(tests)
for d in integrations/*/tests; do [ -d "$d" ] && test_dirs+=("$d"); done
exec python -m pytest "${test_dirs[@]}" "$@"
