#!/bin/sh
# Generates the TLS material the compose proxy serves (docker-compose.yml mounts this directory at
# /etc/baton/tls): a local CA and a server certificate for the proxy signed by it.
#
#   deploy/tls/generate.sh [OUT_DIR]       (default: this directory; needs openssl)
#
#   ca.crt      the CA clients trust:   psql "host=127.0.0.1 port=6432 dbname=appdb user=agent sslmode=verify-full sslrootcert=deploy/tls/ca.crt"
#   ca.key      the CA's key: keep it, or delete it once the certificate is made
#   proxy.crt   the proxy's certificate: SAN DNS:proxy (compose network), DNS:localhost, IP:127.0.0.1, IP:::1
#   proxy.key   its key, mode 0644 so the image's non-root user (uid 1000) can read the read-only mount
#
# Existing files are kept (run with FORCE=1 to replace them). Extra names for the certificate:
# EXTRA_SAN="DNS:db.example.internal,IP:10.0.0.5". The files are ignored by git (deploy/tls/.gitignore):
# never commit a private key. For production, mount certificates from your own CA instead.
set -eu

out="${1:-$(dirname "$0")}"
days="${DAYS:-825}"
san="DNS:proxy,DNS:localhost,IP:127.0.0.1,IP:::1${EXTRA_SAN:+,$EXTRA_SAN}"

command -v openssl >/dev/null 2>&1 || { echo "generate.sh: openssl is required" >&2; exit 1; }
mkdir -p "$out"
if [ -z "${FORCE:-}" ] && [ -s "$out/proxy.crt" ] && [ -s "$out/proxy.key" ] && [ -s "$out/ca.crt" ]; then
  echo "generate.sh: $out already has ca.crt, proxy.crt and proxy.key (FORCE=1 to replace them)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT INT TERM
umask 077

# the CA
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days "$days" \
  -subj "/CN=Baton compose local CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null

# the proxy's key and certificate, signed by the CA
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -subj "/CN=proxy" -keyout "$tmp/proxy.key" -out "$tmp/proxy.csr" 2>/dev/null
cat > "$tmp/ext.cnf" <<CNF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
CNF
openssl x509 -req -in "$tmp/proxy.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/proxy.crt" 2>/dev/null
openssl verify -CAfile "$tmp/ca.crt" "$tmp/proxy.crt" >/dev/null

chmod 0600 "$tmp/ca.key"
chmod 0644 "$tmp/ca.crt" "$tmp/proxy.crt" "$tmp/proxy.key"
for f in ca.key ca.crt proxy.key proxy.crt; do cp -p "$tmp/$f" "$out/$f"; done
echo "generate.sh: wrote $out/ca.crt, $out/proxy.crt, $out/proxy.key (SAN $san, $days days)"
