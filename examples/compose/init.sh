#!/bin/sh
# One-shot setup for docker-compose.yml, run by the `init` service as root.
# Idempotent: what exists is kept, so keys and certificates survive
# `docker compose down` (but not `down -v`).
#
#   $STATE/certs/ca.crt              CA that signed both server certificates
#   $STATE/certs/postgres.{crt,key}  PostgreSQL's certificate (DNS:postgres)
#   $STATE/certs/pgseal.{crt,key}    pgseal's certificate (DNS:pgseal, localhost, 127.0.0.1)
#   $STATE/keys/master.key           master key (file: source)
#   $STATE/keys/keystore.json        keystore with the key sets of examples/policy.yaml
#   $STATE/audit/                    pgseal's security audit log
#
# Certificates are for trying pgseal out; in production use your own CA.
set -eu
STATE=${STATE:-/state}
PGSEAL=${PGSEAL:-pgseal}
PG_UID=${PG_UID:-999}         # postgres in the official image
PGSEAL_UID=${PGSEAL_UID:-65532} # nonroot in the distroless image
DAYS=825

umask 077
mkdir -p "$STATE/certs" "$STATE/keys" "$STATE/audit"
cd "$STATE/certs"

if [ ! -f ca.crt ]; then
	openssl req -x509 -new -nodes -days "$DAYS" \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout ca.key -out ca.crt -subj "/CN=pgseal compose CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# issue NAME SUBJECT_ALT_NAMES: a server certificate signed by the CA.
issue() {
	[ -f "$1.crt" ] && return 0
	openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-keyout "$1.key" -out "$1.csr" -subj "/CN=$1"
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$2" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
		-days "$DAYS" -out "$1.crt" -extfile "$1.ext"
	rm -f "$1.csr" "$1.ext"
}
issue postgres "DNS:postgres,DNS:localhost"
issue pgseal "DNS:pgseal,DNS:localhost,IP:127.0.0.1"

# Each server reads only its own key, which must be mode 0600.
chmod 0644 ca.crt postgres.crt pgseal.crt
chmod 0600 ca.key postgres.key pgseal.key
chown "$PG_UID:$PG_UID" postgres.key postgres.crt
chown "$PGSEAL_UID:$PGSEAL_UID" pgseal.key pgseal.crt
chmod 0755 "$STATE" "$STATE/certs"

cd "$STATE/keys"
if [ ! -f keystore.json ]; then
	$PGSEAL keys init --keystore keystore.json --master-key file:master.key
	for set in pii finance secrets; do
		$PGSEAL keys add "$set" --keystore keystore.json --master-key file:master.key
	done
fi
# pgseal reads the keystore (and reloads it when `pgseal keys` changes it)
# and appends to its audit log.
chown -R "$PGSEAL_UID:$PGSEAL_UID" "$STATE/keys" "$STATE/audit"
echo "init: certificates in $STATE/certs, keystore in $STATE/keys"
