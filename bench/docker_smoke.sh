#!/usr/bin/env bash
# Build the Docker image and prove it works: the static binary answers, and the demo
# runs on the embedded SQLite default inside the image. Needs a Docker engine.
#   bash bench/docker_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
docker build -t ripcord:smoke .
docker run --rm ripcord:smoke --version
work=$(mktemp -d)
chmod 777 "$work"
docker run --rm -v "$work:/work" -w /work ripcord:smoke demo | tail -3
docker image ls ripcord:smoke --format 'image size: {{.Size}}'
