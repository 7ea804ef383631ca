#!/bin/bash
# Client-side cost of one full TLS handshake, per TLS library, against an OpenSSL server set up as
# edgeprov's (edgeprov.tls.server_context): what bench/loadgen.c pays per device with --new-connections.
#
#   bench/handshake_cost/measure.sh DATA_DIR [PORT] [ROUNDS]
#
# DATA_DIR holds ca.pem, server.pem, server.key (an edgeprov data directory). Every client verifies
# the whole chain to ca.pem and the host name "localhost" on every handshake, resumes nothing,
# handshakes, sends "ping", reads "pong" (so a TLS 1.3 session ticket is read as well), and closes.
# Prints, per library, TLS version and key-exchange group: valgrind callgrind instructions per
# handshake (20 handshakes after a warm-up, client only), and client CPU microseconds per
# handshake (median over ROUNDS interleaved rounds of 200, client pinned to CPU 1, server to CPU 0)
# with the per-round ratio of OpenSSL's time to this library's.
#
# Debian packages: libssl-dev, libwolfssl-dev, libgnutls28-dev, libmbedtls-dev, libbearssl-dev,
# android-libboringssl-dev, valgrind. A library whose headers are missing is left out.
set -euo pipefail
data=$1; port=${2:-9444}; rounds=${3:-7}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$out"' EXIT

cc() { gcc -O2 -Wall -g -o "$out/$1" "$here/$2" "${@:3}" 2>/dev/null && echo "$1"; }
built=$(
  cc openssl client_openssl.c -lssl -lcrypto
  cc boringssl client_openssl.c -I/usr/include/android -L/usr/lib/x86_64-linux-gnu/android \
     -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android -lssl -lcrypto
  cc wolfssl client_wolfssl.c -lwolfssl
  cc gnutls client_gnutls.c -lgnutls
  cc mbedtls client_mbedtls.c -lmbedtls -lmbedx509 -lmbedcrypto
  cc bearssl client_bearssl.c -lbearssl
)
gcc -O2 -Wall -o "$out/server" "$here/server_openssl.c" -lssl -lcrypto
taskset -c 0 "$out/server" "$port" "$data/server.pem" "$data/server.key" & server=$!
sleep 0.5

configs=()
for lib in $built; do
  versions="13 12"
  [[ $lib == mbedtls || $lib == bearssl ]] && versions=12  # no TLS 1.3 in the Debian builds
  for v in $versions; do for g in default x25519 p256; do configs+=("$lib:$v:$g"); done; done
done

echo "callgrind: client instructions per handshake"
for c in "${configs[@]}"; do
  IFS=: read -r lib v g <<< "$c"
  valgrind --tool=callgrind --toggle-collect=measured --callgrind-out-file="$out/cg" \
    "$out/$lib" "$port" "$data/ca.pem" localhost "$v" "$g" 20 > "$out/stdout" 2> /dev/null
  ir=$(callgrind_annotate "$out/cg" | awk '/PROGRAM TOTALS/ && !ir {gsub(",", "", $1); ir = $1} END {print ir}')
  awk -v lib="$lib" -v v="${v#1}" -v g="$g" -v ir="$ir" -v got="$(head -1 "$out/stdout")" \
    'BEGIN { printf "  %-10s TLS1.%s %-7s %6.2fM   %s\n", lib, v, g, ir / 20 / 1e6, got }'
done

echo "client CPU per handshake (median of $rounds interleaved rounds)"
for r in $(seq "$rounds"); do
  for c in "${configs[@]}"; do
    IFS=: read -r lib v g <<< "$c"
    [[ $g == default ]] && continue
    us=$(taskset -c 1 "$out/$lib" "$port" "$data/ca.pem" localhost "$v" "$g" 200 | awk '/per handshake/ {print $5}')
    echo "$r $lib $v $g $us"
  done
done > "$out/timing"
python3 - "$out/timing" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, lib, v, g, us = line.split()
    runs[(v, g, lib)][r] = float(us)
for (v, g, lib), us in sorted(runs.items()):
    base = runs[(v, g, "openssl")]
    ratio = statistics.median(base[r] / us[r] for r in us)
    print(f"  {lib:10} TLS1.{v[1]} {g:7} {statistics.median(us.values()):6.0f} us   openssl/this {ratio:.2f}")
PY
