#!/usr/bin/env bash
# The project's test command.
#
#   ./scripts/test.sh [--no-brokers] [go test flags...]
#
# 1. scripts/brokers.sh up: RabbitMQ and ActiveMQ with STOMP on loopback
#    (installs and starts them when needed; the run fails if they are not ready).
# 2. STOMP_INTEROP=1 go test -race -count=1 [flags] ./...   in the repo root.
# 3. The same in compat/ when compat/go.mod exists (the nested module that
#    compares with go-stomp).
#
# Options:
#   --no-brokers   do not start the brokers and leave STOMP_INTEROP unset, so the
#                  interop tests skip (quick local runs).
#   anything else  passed to go test before ./... (e.g. -run TestX -v -short).
#
# Environment read by the tests (exported here with these defaults):
#   STOMP_INTEROP=1                         interop tests must run, and fail when a
#                                           broker is unreachable (set only when the
#                                           brokers were started; unset with --no-brokers)
#   STOMP_RABBITMQ_ADDR=127.0.0.1:61613     RabbitMQ STOMP (guest/guest, host "/")
#   STOMP_RABBITMQ_WS=ws://127.0.0.1:15674/ws   RabbitMQ Web-STOMP (subprotocol v12.stomp)
#   STOMP_ACTIVEMQ_ADDR=127.0.0.1:61614     ActiveMQ Classic STOMP (any login)
# Also honoured: STOMP_BROKERS and BROKER_WAIT_SECONDS (see scripts/brokers.sh).
#
# Exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

brokers=1
args=()
for a in "$@"; do
	case "$a" in
	--no-brokers) brokers=0 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) args+=("$a") ;;
	esac
done

command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"

export STOMP_RABBITMQ_ADDR=${STOMP_RABBITMQ_ADDR:-127.0.0.1:61613}
export STOMP_RABBITMQ_WS=${STOMP_RABBITMQ_WS:-ws://127.0.0.1:15674/ws}
export STOMP_ACTIVEMQ_ADDR=${STOMP_ACTIVEMQ_ADDR:-127.0.0.1:61614}

if [ "$brokers" = 1 ]; then
	echo "== scripts/brokers.sh up"
	if ! "$ROOT/scripts/brokers.sh" up; then
		echo "FAIL: the STOMP brokers are not ready (scripts/brokers.sh up failed)" >&2
		exit 1
	fi
	export STOMP_INTEROP=1
else
	echo "== --no-brokers: STOMP_INTEROP unset, interop tests skip"
	unset STOMP_INTEROP
fi

failed=()

# The delivery-guarantee tests, on their own first and verbose, so that the
# run prints their counts (sent, received, duplicates, missing), and so that
# the one that restarts RabbitMQ runs while nothing else uses it. The main
# run below skips them.
loss_tests='^(TestZeroLossAcrossCuts|TestLosslessDefault|TestInteropLosslessDefault|TestInteropRestartZeroLoss)$'
if [ ${#args[@]} -eq 0 ]; then
	echo "== (.) delivery guarantees: go test -race -count=1 -v -run '$loss_tests' ."
	if ! (STOMP_RESTART_RABBITMQ=${STOMP_INTEROP:+1} go test -race -count=1 -v -run "$loss_tests" . |
		grep -E '^(=== RUN|--- |\s+--- |ok|FAIL|panic)|_test.go:|sent=|received=|missing='); then
		failed+=("delivery guarantees")
	fi
	args=(-skip "$loss_tests")
fi

run_tests() { # DIR
	if [ -z "$(cd "$1" && go list ./... 2>/dev/null)" ] && (cd "$1" && go list ./... >/dev/null 2>&1); then
		echo "== ($1) no Go packages yet: nothing to test"
		return 0
	fi
	# With the brokers, one package at a time: packages testing against
	# the same RabbitMQ at once made its Web-STOMP drop connections.
	local p=()
	[ -n "${STOMP_INTEROP:-}" ] && p=(-p 1)
	echo "== ($1) STOMP_INTEROP=${STOMP_INTEROP:-} go test -race -count=1 ${p[*]} ${args[*]} ./..."
	if ! (cd "$1" && go test -race -count=1 "${p[@]}" "${args[@]}" ./...); then
		failed+=("$1")
	fi
}

run_tests .
if [ -f compat/go.mod ]; then
	run_tests compat
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL: go test failed in: ${failed[*]}" >&2
	exit 1
fi
echo "== all tests passed"
