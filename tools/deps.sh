#!/usr/bin/env bash
# tools/deps.sh [build|test|compat] - install what runnel needs, and nothing twice.
#
#   build   Debian packages to compile the broker (make, make run)
#   test    build + the clients and tools the test suites drive (make test):
#           kcat, librdkafka, kafka-python 2.0.2, confluent-kafka-python,
#           tshark, clang, Node.js + kafkajs (npm ci in compat-tests/),
#           Apache Kafka 4.4.0's jars (Maven; a Java 17 JDK): the integration suite
#           runs Kafka's own DumpLogSegments on runnel's segments and compiles
#           compat-tests/java/ (the Java client's stories) with javac; and Go with
#           the Go clients' modules (compat-tests/go/go.mod), built into
#           build/compat-go/
#   compat  test + current PyPI clients in a venv, @platformatic/kafka
#           (npm); the same jars run the reference broker
#
# Everything present: a few dpkg/stamp checks, well under 2 s, no network.
# Something missing: it says what it installs, then installs exactly that.
# Debian packages go through apt-get (sudo when not root); `apt-get update` runs
# only when an install is needed. Downloads land in git-ignored places:
# compat-tests/node_modules/, build/compat-venv/, build/kafka-lib/.
#
# Stamps: each download directory holds a .runnel-stamp with the sha256 of the
# pin file it was installed from, so editing a pin reinstalls on the next run.

set -euo pipefail

mode=${1:-build}
case "$mode" in
build | test | compat) ;;
*)
        echo "usage: tools/deps.sh [build|test|compat]" >&2
        exit 2
        ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "deps ($mode): $*"; }
die() {
        echo "deps ($mode): error: $*" >&2
        exit 1
}

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
                sudo_cmd=(sudo)
        fi
fi

# ---- Debian packages ---------------------------------------------------------

build_pkgs=(gcc make pkg-config liburing-dev libsnappy-dev liblz4-dev libzstd-dev
        zlib1g-dev libcriterion-dev)
test_pkgs=(python3 kcat librdkafka-dev python3-kafka python3-lz4 python3-snappy
        python3-zstandard python3-confluent-kafka tshark clang libclang-rt-14-dev llvm)
compat_pkgs=(python3-venv)

wanted=("${build_pkgs[@]}")
if [ "$mode" != build ]; then
        wanted+=("${test_pkgs[@]}")
fi
if [ "$mode" = compat ]; then
        wanted+=("${compat_pkgs[@]}")
fi

# One dpkg-query for all of them; a package is present when its status is "ii".
missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>/dev/null |
        awk '$2 == "ii" { print $1 }' || true)
for p in "${wanted[@]}"; do
        if ! grep -qxF "$p" <<<"$installed"; then
                missing+=("$p")
        fi
done

# Node.js may come from Debian (nodejs + npm) or from elsewhere with npm bundled:
# ask for the commands, not the packages, so a working install is left alone.
if [ "$mode" != build ]; then
        command -v node >/dev/null 2>&1 || missing+=(nodejs)
        command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
# Java runs Kafka's tools (test) and the reference broker (compat); javac
# compiles the Java client's stories (compat-tests/java/, test), so a JRE is
# not enough. Maven only fetches the jars. A JDK already on PATH is left alone.
if [ "$mode" != build ]; then
        if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
                missing+=(openjdk-17-jdk-headless)
        fi
        command -v mvn >/dev/null 2>&1 || missing+=(maven)
        # Any Go will do here: one older than compat-tests/go/go.mod asks for
        # fetches the right one below.
        command -v go >/dev/null 2>&1 || missing+=(golang-go)
fi

if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ] && [ ${#sudo_cmd[@]} -eq 0 ]; then
                die "not root and no sudo; install them by hand: apt-get install ${missing[*]}"
        fi
        export DEBIAN_FRONTEND=noninteractive
        if printf '%s\n' "${missing[@]}" | grep -qx tshark; then
                # wireshark-common asks whether non-root users may capture; say no
                # so the install never waits for an answer.
                echo "wireshark-common wireshark-common/install-setuid boolean false" |
                        "${sudo_cmd[@]}" debconf-set-selections
        fi
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

if [ "$mode" = build ]; then exit 0; fi

# ---- stamps ------------------------------------------------------------------

# stamp_of FILE [EXTRA]: the stamp a download made from FILE carries.
stamp_of() { echo "$(sha256sum "$1" | cut -d' ' -f1) ${2:-}"; }
# is_stamped DIR WANT: DIR was installed from exactly WANT.
is_stamped() { [ -f "$1/.runnel-stamp" ] && [ "$(cat "$1/.runnel-stamp")" = "$2" ]; }

# ---- npm: kafkajs (test), + @platformatic/kafka (compat, a devDependency) -----

node_dir=compat-tests/node_modules
lock=compat-tests/package-lock.json
all_stamp=$(stamp_of "$lock" all)
prod_stamp=$(stamp_of "$lock" prod)
if [ "$mode" = compat ]; then
        if ! is_stamped "$node_dir" "$all_stamp"; then
                say "installing npm packages from compat-tests/package-lock.json (kafkajs, @platformatic/kafka)"
                (cd compat-tests && npm ci --no-audit --no-fund --loglevel=error)
                echo "$all_stamp" >"$node_dir/.runnel-stamp"
        fi
elif ! is_stamped "$node_dir" "$prod_stamp" && ! is_stamped "$node_dir" "$all_stamp"; then
        say "installing npm packages from compat-tests/package-lock.json (kafkajs)"
        (cd compat-tests && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
        echo "$prod_stamp" >"$node_dir/.runnel-stamp"
fi

# ---- Apache Kafka 4.4.0 broker + tools jars (Maven Central), test and compat ----

lib=build/kafka-lib
pom=compat-tests/kafka/pom.xml
pom_stamp=$(stamp_of "$pom")
if ! is_stamped "$lib" "$pom_stamp"; then
        say "installing Apache Kafka jars from $pom into $lib"
        rm -rf "$lib"
        # Maven's quiet mode still prints colour resets; keep its output for failures.
        mvn_log=$(mktemp)
        if ! mvn -q -B -f "$pom" dependency:copy-dependencies >"$mvn_log" 2>&1; then
                cat "$mvn_log" >&2
                rm -f "$mvn_log"
                die "mvn dependency:copy-dependencies failed"
        fi
        rm -f "$mvn_log"
        for jar in kafka_2.13-4.4.0.jar kafka-tools-4.4.0.jar; do
                [ -f "$lib/$jar" ] || die "maven left no $lib/$jar"
        done
        echo "$pom_stamp" >"$lib/.runnel-stamp"
fi

# ---- Go: the toolchain compat-tests/go/go.mod asks for, its modules, the program --

# go_version_of GO: "1.26.0" from `GO version`.
go_version_of() { "$1" version 2>/dev/null | awk '{ sub(/^go/, "", $3); print $3 }'; }
# is_go_at_least HAVE WANT: version HAVE >= WANT.
is_go_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

go_dir=compat-tests/go
go_want=$(awk '$1 == "go" { print $2; exit }' "$go_dir/go.mod")
go_local=build/go-toolchain
go_cmd=$(command -v go || true)
[ -n "$go_cmd" ] || die "no go command after installing golang-go"
if [ -x "$go_local/bin/go" ] && is_stamped "$go_local" "go$go_want"; then
        go_cmd=$PWD/$go_local/bin/go
elif ! is_go_at_least "$(go_version_of "$go_cmd")" "$go_want"; then
        # Debian 12's golang-go is 1.19, too old for the clients' modules and
        # too old to switch toolchains itself (GOTOOLCHAIN came with 1.21). The
        # Go toolchain is a module on the Go module proxy: fetch it with the Go
        # there is (checked against the checksum database like any module) and
        # copy it out, setting the execute bits a module zip does not keep.
        arch=$(dpkg --print-architecture)
        module="golang.org/toolchain@v0.0.1-go$go_want.linux-$arch"
        say "Go $(go_version_of "$go_cmd") is older than go.mod's $go_want; installing $module into $go_local"
        dir=$(cd /tmp && GOFLAGS=-modcacherw "$go_cmd" mod download -json "$module" |
                awk -F'"' '$2 == "Dir" { print $4 }')
        [ -n "$dir" ] && [ -f "$dir/bin/go" ] || die "go mod download $module gave no toolchain"
        rm -rf "$go_local"
        mkdir -p build
        cp -r "$dir" "$go_local"
        chmod -R u+w "$go_local"
        chmod +x "$go_local"/bin/* "$go_local"/pkg/tool/*/*
        go_cmd=$PWD/$go_local/bin/go
        [ "$(go_version_of "$go_cmd")" = "$go_want" ] || die "$go_local/bin/go is not Go $go_want"
        echo "go$go_want" >"$go_local/.runnel-stamp"
fi
# Fetches the modules the first time (Go module proxy), then only checks the
# build cache; compat-tests/go_clients.py finds the same program there.
(cd "$go_dir" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$go_cmd" build -o ../../build/compat-go/compat-go . 2>&1) ||
        die "go build in $go_dir failed"

if [ "$mode" = test ]; then exit 0; fi

# ---- PyPI clients in a venv of Debian's python3 --------------------------------

venv=build/compat-venv
req=compat-tests/requirements.txt
req_stamp=$(stamp_of "$req")
if ! is_stamped "$venv" "$req_stamp"; then
        say "installing PyPI packages from $req into $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
        echo "$req_stamp" >"$venv/.runnel-stamp"
fi
