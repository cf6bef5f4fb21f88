#!/bin/sh
# The fleet on one machine: a dispatcher and two arms, three processes joined by Zenoh on 127.0.0.1.
# Ctrl-C stops the dispatcher; the arms are stopped (SIGTERM) on the way out.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${PORT:-7447}
bbflow run "$here" --agent Picker --robot left --bus-connect "tcp/127.0.0.1:$port" &
left=$!
bbflow run "$here" --agent Picker --robot right --bus-connect "tcp/127.0.0.1:$port" &
right=$!
trap 'kill -TERM "$left" "$right" 2>/dev/null || true; wait' EXIT INT TERM
bbflow run "$here" --agent Dispatcher --bus-listen "tcp/127.0.0.1:$port" < "$here/jobs.jsonl"
