#!/usr/bin/env bash
# Builds etcdbench (test/bench/go/etcdbench), the benchmark that drives gavel or etcd with
# etcd's own Go client, offline, in GOPATH mode, from Debian's packaged sources: Go
# (golang-go; 1.19 on bookworm) and golang-etcd-server-dev, which puts etcd 3.4's
# go.etcd.io/etcd/clientv3 (+ concurrency, etcdserverpb) and every dependency under
# /usr/share/gocode/src. No network: GOPROXY=off, modules off.
#
#   bash test/bench/go/build.sh [OUTPUT]      (default: dist/go/etcdbench)
#
# GO names the go command (default: go on PATH); GAVEL_GOCODE the source tree (default:
# /usr/share/gocode); GOCACHE defaults to dist/go/cache. Not part of `npm test` or .ci/run.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../../.." && pwd)"
out="${1:-$repo/dist/go/etcdbench}"
gocode="${GAVEL_GOCODE:-/usr/share/gocode}"
go_command="${GO:-go}"

if ! command -v "$go_command" >/dev/null 2>&1; then
  echo "build.sh: no Go toolchain ('$go_command' is not on PATH): apt-get install golang-go (or set GO=/path/to/go)" >&2
  exit 1
fi
for package in go.etcd.io/etcd/clientv3 go.etcd.io/etcd/clientv3/concurrency go.etcd.io/etcd/etcdserver/etcdserverpb google.golang.org/grpc go.uber.org/zap; do
  if [ ! -d "$gocode/src/$package" ]; then
    echo "build.sh: $gocode/src/$package is missing: apt-get install golang-etcd-server-dev (etcd 3.4's client sources and their dependencies), or set GAVEL_GOCODE" >&2
    exit 1
  fi
done

mkdir -p "$(dirname "$out")"
export GO111MODULE=off GOPATH="$gocode" GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOCACHE="${GOCACHE:-$repo/dist/go/cache}"
cd "$repo/test/bench/go/etcdbench"
if ! "$go_command" build -o "$out" .; then
  echo "build.sh: go build failed (GOPATH=$gocode, $("$go_command" version)); the sources above must be etcd 3.4's clientv3 layout (go.etcd.io/etcd/clientv3, not client/v3)" >&2
  exit 1
fi
echo "build.sh: built $out with $("$go_command" version)" >&2
