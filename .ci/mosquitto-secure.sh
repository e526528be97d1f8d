#!/usr/bin/env bash
# The secure path against a real Mosquitto: a test CA made here, a TLS listener that requires a
# client certificate (the hub's, mutual TLS) and one that does not (clinicians), a password file
# and an ACL. The daemon publishes the bundled demo over mqtts:// with its account, its password
# from an environment variable; a clinician account subscribed over TLS must receive all 19
# feedback messages and must be refused when it tries to publish feedback itself.
#
# Usage: .ci/mosquitto-secure.sh path/to/biofeedd
set -euo pipefail
biofeedd=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
broker_pid=""
cleanup() {
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fail() { echo "FAIL: $*"; echo "--- mosquitto log"; cat mosquitto.log || true; exit 1; }

# A CA, a broker certificate for 127.0.0.1 (and broker.test), and the hub's client certificate.
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=biofeedd CI CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=broker.test" 2>/dev/null
echo "subjectAltName=DNS:broker.test,IP:127.0.0.1" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout hub.key -out hub.csr -subj "/CN=ci-secure-hub" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > hub.ext
openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out hub.pem -days 2 -extfile hub.ext 2>/dev/null
chmod 644 server.key

touch passwd && chmod 600 passwd
mosquitto_passwd -b passwd hub hub-s3cret-4411
mosquitto_passwd -b passwd clinician clinician-secret
cat > acl <<'ACL'
user hub
topic readwrite biofeedd/v1/#
user clinician
topic read biofeedd/v1/+/+/feedback
topic read biofeedd/v1/+/status
ACL

hub_port=$(free_port)
clinician_port=$(free_port)
# `user root`: when CI runs as root, Mosquitto would otherwise drop to its own user, which cannot
# read files in this private folder (ignored when not started as root).
cat > mosquitto.conf <<CONF
user root
per_listener_settings false
set_tcp_nodelay true
allow_anonymous false
password_file $work/passwd
acl_file $work/acl
persistence false
listener $hub_port 127.0.0.1
cafile $work/ca.pem
certfile $work/server.pem
keyfile $work/server.key
require_certificate true
listener $clinician_port 127.0.0.1
cafile $work/ca.pem
certfile $work/server.pem
keyfile $work/server.key
CONF
mosquitto -c mosquitto.conf > mosquitto.log 2>&1 &
broker_pid=$!
for _ in $(seq 1 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $clinician_port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

# The daemon's config: the demo, published over mutual TLS with the hub's account.
sed -e '/^\[mqtt\]/,$d' -e "s|\.\./data/|$repo/data/|" "$repo/config/demo.toml" > hub.toml
sed -i 's/^id = "demo-hub"/id = "ci-secure"/' hub.toml
cat >> hub.toml <<TOML
[mqtt]
url = "mqtts://127.0.0.1:$hub_port"
username = "hub"
password_env = "CI_MQTT_PASSWORD"
outbox_dir = "$work/outbox"
[mqtt.tls]
ca_file = "$work/ca.pem"
cert_file = "$work/hub.pem"
key_file = "$work/hub.key"
TOML

mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$clinician_port" --cafile ca.pem -u clinician -P clinician-secret \
  -q 1 -t 'biofeedd/v1/ci-secure/+/feedback' -C 19 -W 90 > received.jsonl &
sub_pid=$!
sleep 1
CI_MQTT_PASSWORD=hub-s3cret-4411 "$biofeedd" run --config hub.toml --speed max --output quiet 2> daemon.log \
  || { cat daemon.log; fail "the daemon did not run cleanly over mutual TLS"; }
grep -q "hub-s3cret-4411" daemon.log && fail "the password appeared in the daemon's log"
wait "$sub_pid" || fail "the clinician did not receive 19 feedback messages over TLS ($(wc -l < received.jsonl) arrived)"
[ "$(wc -l < received.jsonl)" -eq 19 ] || fail "expected 19 feedback messages, got $(wc -l < received.jsonl)"
python3 - received.jsonl <<'PY' || fail "feedback payloads out of order or malformed"
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert seqs == list(range(19)), seqs
PY
echo "mutual TLS + password: 19 of 19 feedback messages reached the clinician in order"

# The clinician may read feedback but not publish it: Mosquitto answers a QoS 1 publish with
# "not authorized" (MQTT 5), and a subscriber with the hub's rights sees nothing.
mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$hub_port" --cafile ca.pem --cert hub.pem --key hub.key -u hub -P hub-s3cret-4411 \
  -q 1 -t 'biofeedd/v1/ci-secure/s01/feedback' -C 1 -W 3 -R > forged.jsonl 2>/dev/null &
watch_pid=$!
sleep 0.5
if mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$clinician_port" --cafile ca.pem -u clinician -P clinician-secret \
  -q 1 -t 'biofeedd/v1/ci-secure/s01/feedback' -m '{"forged":true}' > pub.log 2>&1; then
  grep -qi "not authori" pub.log || echo "(mosquitto_pub did not report the refusal; checking delivery instead)"
else
  grep -qi "not authori" pub.log || { cat pub.log; fail "the clinician's publish failed for another reason"; }
fi
wait "$watch_pid" || true
[ -s forged.jsonl ] && fail "a clinician's publish reached the feedback topic"
echo "ACL: the clinician's publish to a feedback topic was refused"

# Wrong password: refused, and the run fails saying the broker was never reached.
sed -i 's/^outbox_dir = .*/outbox_dir = "'"${work//\//\\/}"'\/outbox-bad"/' hub.toml
if CI_MQTT_PASSWORD=bad-pw-7731 "$biofeedd" run --config hub.toml --speed max --output quiet 2> bad.log; then
  fail "a run with a wrong password succeeded"
fi
grep -q "never reached" bad.log || { cat bad.log; fail "the wrong-password run did not say the broker was never reached"; }
grep -q "bad-pw-7731" bad.log && fail "the password appeared in the daemon's log"
echo "a wrong password is refused and the run fails, saying so"
