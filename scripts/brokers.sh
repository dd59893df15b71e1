#!/usr/bin/env bash
# Start, stop or inspect the real STOMP brokers that the interop tests use.
#
#   scripts/brokers.sh [up|down|status]      (default: up)
#
# Brokers (all loopback only):
#   rabbitmq  RabbitMQ (Debian rabbitmq-server): STOMP 127.0.0.1:61613,
#             Web-STOMP ws://127.0.0.1:15674/ws, AMQP 127.0.0.1:5672, guest/guest
#   activemq  ActiveMQ Classic (Debian activemq): STOMP 127.0.0.1:61614
#             (OpenWire 127.0.0.1:61616), any login accepted
#
# Environment:
#   STOMP_BROKERS="rabbitmq activemq"   which brokers to handle
#   BROKER_WAIT_SECONDS=90              how long `up` waits for each broker
#   RABBITMQ_KEEP_DATA=1                do not empty RabbitMQ's data when starting it
#                                       (by default a start begins from an empty node)
#
# Must run as root (installs Debian packages when missing, writes /etc config,
# starts daemons without systemd). Idempotent: `up` on brokers that already
# answer only probes them. Exits non-zero when a broker is not ready.
set -euo pipefail

CMD=${1:-up}
BROKERS=${STOMP_BROKERS:-rabbitmq activemq}
WAIT=${BROKER_WAIT_SECONDS:-90}

RABBIT_STOMP_PORT=61613
RABBIT_WS_PORT=15674
RABBIT_AMQP_PORT=5672
AMQ_STOMP_PORT=61614
AMQ_OPENWIRE_PORT=61616

RABBIT_ETC=/etc/rabbitmq
AMQ_CONF=/etc/activemq/instances-available/main
AMQ_XML=$AMQ_CONF/activemq.xml
AMQ_LOG4J=$AMQ_CONF/log4j-stompout.properties
AMQ_BASE=/var/lib/activemq/main
AMQ_LOGDIR=/var/log/activemq
AMQ_LOG=$AMQ_LOGDIR/stompout-main.log
AMQ_OUT=$AMQ_LOGDIR/stompout-main.out
AMQ_PIDFILE=/run/stompout-activemq.pid
LOCK=/run/stompout-brokers.lock  # fd 9; closed (9>&-) for every daemon we spawn

export DEBIAN_FRONTEND=noninteractive

log() { printf '[brokers] %s\n' "$*" >&2; }
die() { printf '[brokers] ERROR: %s\n' "$*" >&2; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- probes ----

# stomp_probe PORT: a raw STOMP CONNECT; succeeds when the first line is CONNECTED.
stomp_probe() {
	timeout 10 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0" >&3
		IFS= read -r -t 8 line <&3 || exit 1
		printf "DISCONNECT\n\n\0" >&3 2>/dev/null || true
		exec 3<&- 3>&-
		[ "${line%$'"'"'\r'"'"'}" = CONNECTED ]
	' _ "$1" 2>/dev/null
}

# ws_probe PORT PATH: an HTTP WebSocket upgrade; succeeds on "HTTP/1.1 101".
ws_probe() {
	timeout 10 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n" "$2" "$1" >&3
		IFS= read -r -t 8 line <&3 || exit 1
		exec 3<&- 3>&-
		case "$line" in "HTTP/1.1 101"*) exit 0 ;; *) exit 1 ;; esac
	' _ "$1" "$2" 2>/dev/null
}

# listen_addrs PORT: local addresses listening on PORT, one per line.
listen_addrs() {
	ss -Hltn "sport = :$1" 2>/dev/null | awk '{ print $4 }'
}

# loopback_only PORT...: every listener on these ports is on 127.0.0.1 or [::1]
# (and there is at least one). Prints offenders.
loopback_only() {
	local port addr ok=0
	for port in "$@"; do
		local any=0
		while IFS= read -r addr; do
			[ -n "$addr" ] || continue
			any=1
			case "$addr" in
			127.0.0.1:"$port" | "[::1]:$port" | "[::ffff:127.0.0.1]:$port") ;;
			*) echo "port $port bound to $addr"; ok=1 ;;
			esac
		done < <(listen_addrs "$port")
		[ "$any" = 1 ] || { echo "port $port: nothing listening"; ok=1; }
	done
	return $ok
}

# ---------------------------------------------------------------- install ---

have_rabbit() { [ -x /usr/sbin/rabbitmq-server ] && [ -d /usr/lib/rabbitmq ]; }
have_amq() { [ -f /usr/share/activemq/bin/activemq.jar ] && [ -f "$AMQ_XML" ]; }

apt_install() {
	local created_policy=0
	# The packages must not start anything: we start the brokers ourselves.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	local rc=0
	log "apt-get update"
	apt-get -o DPkg::Lock::Timeout=120 update -qq || rc=$?
	if [ $rc = 0 ]; then
		log "apt-get install $*"
		apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"$@" >/tmp/stompout-apt.log 2>&1 || rc=$?
		[ $rc = 0 ] || tail -n 30 /tmp/stompout-apt.log >&2
	fi
	[ "$created_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get install $* failed (exit $rc)"
}

# --------------------------------------------------------------- rabbitmq ---

# set_kv FILE KEY VALUE: in a shell-style KEY=VALUE file, set KEY (replace or append).
set_kv() {
	local file=$1 key=$2 val=$3
	if grep -Eq "^[[:space:]]*(export[[:space:]]+)?$key=" "$file"; then
		grep -Eq "^[[:space:]]*(export[[:space:]]+)?$key=$val\$" "$file" ||
			sed -i -E "s|^[[:space:]]*(export[[:space:]]+)?$key=.*|$key=$val|" "$file"
	else
		printf '%s=%s\n' "$key" "$val" >>"$file"
	fi
}

# rabbit_config: loopback-only config. Must run before any Erlang command on a
# fresh machine (otherwise epmd listens on all interfaces).
rabbit_config() {
	mkdir -p "$RABBIT_ETC"
	local env=$RABBIT_ETC/rabbitmq-env.conf conf=$RABBIT_ETC/rabbitmq.conf
	if [ ! -f "$env" ]; then
		cat >"$env" <<-'EOF'
			# Written by scripts/brokers.sh: loopback only.
			NODENAME=rabbit@localhost
			NODE_IP_ADDRESS=127.0.0.1
			ERL_EPMD_ADDRESS=127.0.0.1
			export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
		EOF
	else
		# Keep the node name of an existing install (a running node is reached by it).
		grep -Eq '^[[:space:]]*(export[[:space:]]+)?NODENAME=' "$env" || set_kv "$env" NODENAME rabbit@localhost
		set_kv "$env" NODE_IP_ADDRESS 127.0.0.1
		set_kv "$env" ERL_EPMD_ADDRESS 127.0.0.1
	fi
	# rabbitmq.conf: drop our keys (and any other AMQP/STOMP listener lines),
	# keep the rest, append our block.
	local tmp
	tmp=$(mktemp)
	if [ -f "$conf" ]; then
		grep -Ev '^[[:space:]]*(listeners\.tcp\.|stomp\.listeners\.tcp\.|web_stomp\.tcp\.|# scripts/brokers\.sh)' "$conf" >"$tmp" || true
	fi
	cat >>"$tmp" <<-EOF
		# scripts/brokers.sh: loopback-only listeners
		listeners.tcp.1 = 127.0.0.1:$RABBIT_AMQP_PORT
		stomp.listeners.tcp.1 = 127.0.0.1:$RABBIT_STOMP_PORT
		web_stomp.tcp.ip = 127.0.0.1
		web_stomp.tcp.port = $RABBIT_WS_PORT
	EOF
	if [ -f "$conf" ] && cmp -s "$tmp" "$conf"; then
		rm -f "$tmp"
	else
		install -m 0644 "$tmp" "$conf"
		rm -f "$tmp"
		log "wrote $conf"
	fi
}

# rabbit_plugins_file: make sure the enabled_plugins file lists both plugins,
# without touching a running node (enabling online binds all interfaces).
rabbit_plugins_file() {
	local f=$RABBIT_ETC/enabled_plugins
	if [ ! -s "$f" ]; then
		printf '[rabbitmq_stomp,rabbitmq_web_stomp].\n' >"$f"
		log "wrote $f"
	elif ! grep -q 'rabbitmq_stomp' "$f" || ! grep -q 'rabbitmq_web_stomp' "$f"; then
		(cd / && rabbitmq-plugins -q --offline enable rabbitmq_stomp rabbitmq_web_stomp >/dev/null 9>&-)
		log "enabled rabbitmq_stomp rabbitmq_web_stomp in $f (offline)"
	fi
	chown rabbitmq:rabbitmq "$f" 2>/dev/null || true
	chmod 0644 "$f"
}

# alive PID: a live process (a zombie has an empty /proc/PID/cmdline).
alive() {
	[ -n "$( { tr -d '\0' <"/proc/$1/cmdline"; } 2>/dev/null)" ]
}

rabbit_pid() {
	pgrep -u rabbitmq -f 'beam.*-s rabbit boot' 2>/dev/null | head -n 1
}

rabbit_ready() {
	stomp_probe $RABBIT_STOMP_PORT && ws_probe $RABBIT_WS_PORT /ws &&
		loopback_only $RABBIT_STOMP_PORT $RABBIT_WS_PORT $RABBIT_AMQP_PORT >/dev/null
}

rabbit_stop() {
	local pid
	pid=$(rabbit_pid)
	[ -n "$pid" ] || return 0
	log "stopping RabbitMQ (pid $pid)"
	(cd / && rabbitmqctl -q -t 60 shutdown >/dev/null 2>&1 9>&-) || true
	local i
	for i in $(seq 1 100); do
		alive "$pid" || break
		sleep 0.2
	done
	if alive "$pid"; then
		log "RabbitMQ still running: SIGTERM, then SIGKILL, pid $pid"
		kill -TERM "$pid" 2>/dev/null || true
		sleep 5
		kill -KILL "$pid" 2>/dev/null || true
	fi
}

# rabbit_reset_data empties the stopped node's data before it starts. The
# node is a throwaway test broker: every interop run leaves queues behind
# (RabbitMQ declares /queue/ destinations durable), and a node that boots
# with thousands of them spends minutes recovering them, or never finishes
# under the file handle limit. RABBITMQ_KEEP_DATA=1 keeps the data.
rabbit_reset_data() {
	[ "${RABBITMQ_KEEP_DATA:-}" = 1 ] && return 0
	local dir=/var/lib/rabbitmq/mnesia
	if [ -d "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		log "emptying RabbitMQ's data ($dir): the test broker starts empty"
		rm -rf "${dir:?}"/*
	fi
}

rabbit_up() {
	local t0 reason
	t0=$(now)
	# Fast path: already serving STOMP and Web-STOMP on loopback only.
	if [ -n "$(rabbit_pid)" ] && rabbit_ready; then
		rabbit_config   # no-op when already written
		rabbit_plugins_file
		echo "rabbitmq: ready in $(elapsed "$t0")s (already running)"
		return 0
	fi
	rabbit_config
	if ! have_rabbit; then
		die "rabbitmq-server is not installed (install step failed?)"
	fi
	rabbit_plugins_file
	if [ -n "$(rabbit_pid)" ]; then
		# Maybe still booting: wait for it, then look again.
		(cd / && rabbitmqctl -q -t 60 await_startup >/dev/null 2>&1 9>&-) || true
		if rabbit_ready; then
			echo "rabbitmq: ready in $(elapsed "$t0")s (was starting)"
			return 0
		fi
		# Started without the STOMP plugins or with listeners on all
		# interfaces: enabling the plugins on a running node binds 0.0.0.0,
		# so restart it with the loopback-only config instead.
		reason=$(loopback_only $RABBIT_STOMP_PORT $RABBIT_WS_PORT $RABBIT_AMQP_PORT | tr '\n' ';' || true)
		log "restarting the running RabbitMQ node with the STOMP config (${reason:-STOMP not answering})"
		rabbit_stop
	fi
	rabbit_reset_data
	log "starting RabbitMQ"
	(cd / && ulimit -n 65536 2>/dev/null; rabbitmq-server -detached </dev/null >/dev/null 2>&1 9>&-) ||
		die "rabbitmq-server -detached failed"
	local deadline=$((SECONDS + WAIT))
	until stomp_probe $RABBIT_STOMP_PORT; do
		if [ $SECONDS -ge $deadline ]; then
			tail -n 30 /var/log/rabbitmq/rabbit@*.log >&2 2>/dev/null || true
			die "RabbitMQ STOMP on 127.0.0.1:$RABBIT_STOMP_PORT did not answer CONNECTED within ${WAIT}s (log: /var/log/rabbitmq/)"
		fi
		sleep 0.3
	done
	until ws_probe $RABBIT_WS_PORT /ws; do
		if [ $SECONDS -ge $deadline ]; then
			die "RabbitMQ Web-STOMP ws://127.0.0.1:$RABBIT_WS_PORT/ws did not answer 101 within ${WAIT}s"
		fi
		sleep 0.3
	done
	if ! reason=$(loopback_only $RABBIT_STOMP_PORT $RABBIT_WS_PORT $RABBIT_AMQP_PORT); then
		die "RabbitMQ listens beyond loopback: $reason"
	fi
	echo "rabbitmq: ready in $(elapsed "$t0")s (STOMP 127.0.0.1:$RABBIT_STOMP_PORT, Web-STOMP ws://127.0.0.1:$RABBIT_WS_PORT/ws)"
}

rabbit_down() {
	if [ -z "$(rabbit_pid)" ]; then
		echo "rabbitmq: not running"
		return 0
	fi
	rabbit_stop
	(cd / && epmd -kill >/dev/null 2>&1 9>&-) || true
	echo "rabbitmq: stopped"
}

rabbit_status() {
	local pid st=0
	pid=$(rabbit_pid)
	if ! have_rabbit; then
		echo "rabbitmq: not installed"
		return 1
	fi
	printf 'rabbitmq: pid %s;' "${pid:-none}"
	if stomp_probe $RABBIT_STOMP_PORT; then printf ' STOMP %s CONNECTED;' $RABBIT_STOMP_PORT; else printf ' STOMP %s down;' $RABBIT_STOMP_PORT; st=1; fi
	if ws_probe $RABBIT_WS_PORT /ws; then printf ' Web-STOMP %s 101;' $RABBIT_WS_PORT; else printf ' Web-STOMP %s down;' $RABBIT_WS_PORT; st=1; fi
	printf ' listening:'
	local p
	for p in $RABBIT_AMQP_PORT $RABBIT_STOMP_PORT $RABBIT_WS_PORT; do
		printf ' %s' $(listen_addrs $p)
	done
	echo
	return $st
}

# --------------------------------------------------------------- activemq ---

# amq_config: STOMP connector on 127.0.0.1:61614 beside OpenWire, every
# connector on loopback. Prints "changed" when the XML was modified.
amq_config() {
	local tmp
	tmp=$(mktemp)
	cp "$AMQ_XML" "$tmp"
	# Any connector bound to all interfaces (or with no host) -> 127.0.0.1.
	sed -i -E '/<transportConnector /{
		s#://(0\.0\.0\.0|\[::\]|::|\*)(:[0-9]+)#://127.0.0.1\2#g
		s#://(localhost|\[::1\])(:[0-9]+)#://127.0.0.1\2#g
		s#(uri="[a-z+]*://):#\1127.0.0.1:#
	}' "$tmp"
	if grep -Eq '<transportConnector[^>]*name="stomp"' "$tmp"; then
		sed -i -E "/<transportConnector[^>]*name=\"stomp\"/s#uri=\"[^\"]*\"#uri=\"stomp://127.0.0.1:$AMQ_STOMP_PORT\"#" "$tmp"
	elif grep -Eq '<transportConnector[^>]*name="openwire"' "$tmp"; then
		sed -i -E "/<transportConnector[^>]*name=\"openwire\"/a\\
            <transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$AMQ_STOMP_PORT\"/>" "$tmp"
	elif grep -q '<transportConnectors>' "$tmp"; then
		sed -i -E "/<transportConnectors>/a\\
            <transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$AMQ_STOMP_PORT\"/>" "$tmp"
	else
		rm -f "$tmp"
		die "$AMQ_XML has no <transportConnectors>: cannot add the STOMP connector"
	fi
	if cmp -s "$tmp" "$AMQ_XML"; then
		rm -f "$tmp"
	else
		cat "$tmp" >"$AMQ_XML"
		rm -f "$tmp"
		log "wrote $AMQ_XML (STOMP connector stomp://127.0.0.1:$AMQ_STOMP_PORT)"
		echo changed
	fi
	if [ ! -f "$AMQ_LOG4J" ] || ! grep -q "$AMQ_LOG" "$AMQ_LOG4J"; then
		cat >"$AMQ_LOG4J" <<-EOF
			# Written by scripts/brokers.sh (log4j 1.2).
			log4j.rootLogger=INFO, file
			log4j.logger.org.apache.activemq.spring=WARN
			log4j.logger.org.springframework=WARN
			log4j.logger.org.apache.xbean=WARN
			log4j.appender.file=org.apache.log4j.RollingFileAppender
			log4j.appender.file.File=$AMQ_LOG
			log4j.appender.file.MaxFileSize=10MB
			log4j.appender.file.MaxBackupIndex=2
			log4j.appender.file.Append=true
			log4j.appender.file.layout=org.apache.log4j.PatternLayout
			log4j.appender.file.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
		EOF
		chmod 0644 "$AMQ_LOG4J"
	fi
	mkdir -p "$AMQ_BASE/data" "$AMQ_LOGDIR"
	chown -R activemq:activemq "$AMQ_BASE" "$AMQ_LOGDIR"
}

# amq_is_ours PID: PID is a live (non-zombie) ActiveMQ java process.
amq_is_ours() {
	local cl
	[ -n "${1:-}" ] && [ -r "/proc/$1/cmdline" ] || return 1
	cl=$( { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null) || return 1
	case "$cl" in *activemq.jar*" start "*) return 0 ;; *) return 1 ;; esac
}

amq_pid() {
	local pid
	if [ -f "$AMQ_PIDFILE" ]; then
		pid=$(cat "$AMQ_PIDFILE" 2>/dev/null || true)
		if amq_is_ours "$pid"; then echo "$pid"; return 0; fi
	fi
	# Pid file lost: look for our broker's command line.
	for pid in $(pgrep -u activemq -f 'activemq\.jar start' 2>/dev/null); do
		if amq_is_ours "$pid"; then echo "$pid"; return 0; fi
	done
	return 0
}

amq_start() {
	local java
	java=$(command -v java) || die "java not found (the activemq package depends on a JRE)"
	: >>"$AMQ_OUT"
	chown activemq:activemq "$AMQ_OUT"
	log "starting ActiveMQ"
	(
		cd "$AMQ_BASE"
		exec setsid setpriv --reuid=activemq --regid=activemq --init-groups -- \
			"$java" -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
			-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
			-Dactivemq.home=/usr/share/activemq \
			-Dactivemq.base=$AMQ_BASE \
			-Dactivemq.conf=$AMQ_CONF \
			-Dactivemq.data=$AMQ_BASE/data \
			-Dlog4j.configuration=file:$AMQ_LOG4J \
			-jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$AMQ_XML" \
			</dev/null >>"$AMQ_OUT" 2>&1 9>&-
	) &
	local pid=$!
	echo "$pid" >"$AMQ_PIDFILE"
}

amq_stop() {
	local pid i
	pid=$(amq_pid)
	if [ -z "$pid" ]; then
		rm -f "$AMQ_PIDFILE"
		return 0
	fi
	log "stopping ActiveMQ (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 150); do
		amq_is_ours "$pid" || break
		sleep 0.2
	done
	if amq_is_ours "$pid"; then
		log "ActiveMQ did not stop in 30s: SIGKILL pid $pid"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 1
	fi
	rm -f "$AMQ_PIDFILE"
}

amq_ready() {
	stomp_probe $AMQ_STOMP_PORT && loopback_only $AMQ_STOMP_PORT $AMQ_OPENWIRE_PORT >/dev/null
}

amq_up() {
	local t0 pid changed reason
	t0=$(now)
	pid=$(amq_pid)
	if [ -n "$pid" ] && amq_ready; then
		changed=$(amq_config)
		if [ -z "$changed" ]; then
			echo "activemq: ready in $(elapsed "$t0")s (already running, pid $pid)"
			return 0
		fi
	else
		have_amq || die "activemq is not installed (install step failed?)"
		changed=$(amq_config)
	fi
	if [ -n "$pid" ] && [ -n "$changed" ]; then
		log "configuration changed: restarting ActiveMQ"
		amq_stop
		pid=
	fi
	[ -n "$pid" ] || amq_start
	pid=$(cat "$AMQ_PIDFILE")
	local deadline=$((SECONDS + WAIT))
	until stomp_probe $AMQ_STOMP_PORT; do
		if ! amq_is_ours "$pid"; then
			tail -n 30 "$AMQ_OUT" "$AMQ_LOG" >&2 2>/dev/null || true
			die "ActiveMQ (pid $pid) exited before answering on 127.0.0.1:$AMQ_STOMP_PORT (logs: $AMQ_LOG, $AMQ_OUT)"
		fi
		if [ $SECONDS -ge $deadline ]; then
			tail -n 30 "$AMQ_OUT" "$AMQ_LOG" >&2 2>/dev/null || true
			die "ActiveMQ STOMP on 127.0.0.1:$AMQ_STOMP_PORT did not answer CONNECTED within ${WAIT}s (logs: $AMQ_LOG, $AMQ_OUT)"
		fi
		sleep 0.2
	done
	if ! reason=$(loopback_only $AMQ_STOMP_PORT $AMQ_OPENWIRE_PORT); then
		die "ActiveMQ listens beyond loopback: $reason"
	fi
	echo "activemq: ready in $(elapsed "$t0")s (STOMP 127.0.0.1:$AMQ_STOMP_PORT, pid $pid, log $AMQ_LOG)"
}

amq_down() {
	if [ -z "$(amq_pid)" ]; then
		rm -f "$AMQ_PIDFILE"
		echo "activemq: not running"
		return 0
	fi
	amq_stop
	echo "activemq: stopped"
}

amq_status() {
	local pid st=0
	if ! have_amq; then
		echo "activemq: not installed"
		return 1
	fi
	pid=$(amq_pid)
	printf 'activemq: pid %s;' "${pid:-none}"
	if stomp_probe $AMQ_STOMP_PORT; then printf ' STOMP %s CONNECTED;' $AMQ_STOMP_PORT; else printf ' STOMP %s down;' $AMQ_STOMP_PORT; st=1; fi
	printf ' listening:'
	local p
	for p in $AMQ_STOMP_PORT $AMQ_OPENWIRE_PORT; do
		printf ' %s' $(listen_addrs $p)
	done
	echo
	return $st
}

# ------------------------------------------------------------------ main ----

case "$CMD" in
up | down | status) ;;
-h | --help | help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac

want_rabbit=0 want_amq=0
for b in $BROKERS; do
	case "$b" in
	rabbitmq | rabbit) want_rabbit=1 ;;
	activemq | amq) want_amq=1 ;;
	*) die "STOMP_BROKERS: unknown broker '$b' (want rabbitmq and/or activemq)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts daemons)"

# One brokers.sh at a time (test runs may start concurrently).
exec 9>"$LOCK"
flock -w 600 9 || die "another scripts/brokers.sh holds $LOCK"

rc=0
case "$CMD" in
up)
	T0=$(now)
	pkgs=()
	if [ $want_rabbit = 1 ] && ! have_rabbit; then
		# Config first: the package's scripts and the first Erlang command
		# must already see the loopback-only settings.
		rabbit_config
		pkgs+=(rabbitmq-server)
	fi
	[ $want_amq = 1 ] && ! have_amq && pkgs+=(activemq)
	if [ ${#pkgs[@]} -gt 0 ]; then
		t=$(now)
		apt_install "${pkgs[@]}"
		echo "install: ${pkgs[*]} in $(elapsed "$t")s"
	fi
	if [ $want_rabbit = 1 ]; then (rabbit_up) || rc=1; fi
	if [ $want_amq = 1 ]; then (amq_up) || rc=1; fi
	if [ $rc = 0 ]; then
		echo "brokers: ready in $(elapsed "$T0")s ($BROKERS)"
	else
		echo "brokers: NOT READY (see errors above)" >&2
	fi
	;;
down)
	if [ $want_amq = 1 ]; then amq_down || rc=1; fi
	if [ $want_rabbit = 1 ]; then rabbit_down || rc=1; fi
	;;
status)
	if [ $want_rabbit = 1 ]; then rabbit_status || rc=1; fi
	if [ $want_amq = 1 ]; then amq_status || rc=1; fi
	;;
esac
exit $rc
