#!/usr/bin/env bash
# Apache Kafka for the tests. The tests start private brokers themselves
# (examples/support/kafka_server.rs); this script only makes sure the broker's jars exist.
#
#   scripts/kafka.sh install   resolves org.apache.kafka:kafka_2.13 and its runtime
#                              dependencies with Maven (scripts/kafka/pom.xml) into
#                              $SNAPFLOW_KAFKA_HOME/jars (idempotent); installs Debian's
#                              openjdk-17-jre-headless and maven first where `java` or `mvn`
#                              is missing (as root)
#   scripts/kafka.sh home      prints $SNAPFLOW_KAFKA_HOME
#
# SNAPFLOW_KAFKA_HOME defaults to ~/.cache/snapflow/kafka-$KAFKA_VERSION; the Maven fetch is
# given SNAPFLOW_KAFKA_FETCH_TIMEOUT seconds (default 900).
set -euo pipefail

# Keep in step with scripts/kafka/pom.xml and examples/support/kafka_server.rs.
KAFKA_VERSION=4.1.1
here="$(cd "$(dirname "$0")" && pwd)"
home="${SNAPFLOW_KAFKA_HOME:-${HOME:-/root}/.cache/snapflow/kafka-$KAFKA_VERSION}"

need_tools() {
    command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "kafka.sh: 'java' (17 or newer) and 'mvn' are needed to fetch and run the" \
            "Kafka broker; install them (apt-get install -y openjdk-17-jre-headless maven)" >&2
        exit 1
    fi
    echo "kafka.sh: installing Debian's openjdk-17-jre-headless and maven"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y openjdk-17-jre-headless maven
}

case "${1:-}" in
install)
    # `complete` is written last: a fetch cut short is redone, not half-used.
    if [ -f "$home/complete" ]; then
        echo "kafka.sh: Kafka $KAFKA_VERSION jars present in $home/jars"
        exit 0
    fi
    need_tools
    rm -rf "$home/jars"
    mkdir -p "$home/jars"
    echo "kafka.sh: fetching Kafka $KAFKA_VERSION jars into $home/jars"
    # Bounded: an unreachable repository fails the install (and CI) instead of hanging it.
    # Maven's own HTTP timeouts and retries cut each stalled download short.
    timeout "${SNAPFLOW_KAFKA_FETCH_TIMEOUT:-900}" \
        mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
        -Dmaven.wagon.http.retryHandler.count=3 \
        -Daether.connector.connectTimeout=30000 -Daether.connector.requestTimeout=60000 \
        -DincludeScope=runtime -DoutputDirectory="$home/jars" || {
        echo "kafka.sh: fetching the Kafka jars with Maven failed or took over" \
            "${SNAPFLOW_KAFKA_FETCH_TIMEOUT:-900} s (SNAPFLOW_KAFKA_FETCH_TIMEOUT)" >&2
        exit 1
    }
    ls "$home/jars"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null
    echo "$KAFKA_VERSION" >"$home/complete"
    ;;
home)
    echo "$home"
    ;;
*)
    echo "usage: $0 install|home" >&2
    exit 2
    ;;
esac
