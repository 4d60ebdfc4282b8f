#!/usr/bin/env bash
# The main job on embedded defaults: build the demo world, index it, search, rerank, show results.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
"${PIP[@]}" -e ".[all]"
exec omniretrieve demo "$@"
