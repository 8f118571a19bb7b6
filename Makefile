# sipalg — everything a newcomer needs goes through these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := iptables nftables conntrack iproute2 libnetfilter-queue-dev libnftnl-dev libmnl-dev \
                sip-tester tcpdump sipvicious curl sngrep dpkg-dev lintian mandoc groff-base man-db \
                redis-server keepalived conntrackd kamailio baresip-core
NATIVE := native/build/Release/sipalg_native.node
SIPALG := node dist/src/cli/main.js

.PHONY: deps sysdeps build native ts man deb test demo demo-ha bench soak install install-rules uninstall-rules clean

# System packages: installed only when one is missing (needs root and Debian's apt).
sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

deps: sysdeps node_modules/.package-lock.json

$(NATIVE): native/binding.gyp $(wildcard native/*.c native/*.cc native/*.h) | node_modules/.package-lock.json
	cd native && npx --yes node-gyp rebuild --loglevel=error >/dev/null

native: $(NATIVE)

ts: node_modules/.package-lock.json
	npx tsc -p tsconfig.json

# sipalg(8) and sipalg.yaml(5), from the command table and the config (src/cli/man.ts).
man: ts
	node dist/src/cli/man.js dist/man >/dev/null

build: deps native ts man

# The Debian package build/sipalg_<version>_amd64.deb (packaging/deb.sh; lintian build/*.deb checks it).
deb: build
	@bash packaging/deb.sh build

test: build
	npx tsc -p test/tsconfig.json
	@bash test/run.sh

demo: build
	@bash test/lab/demo.sh

# Two gateways (docs/ha.md): a call with RTP, the active one killed mid-call, the gap each phone heard.
demo-ha: build
	@bash test/lab/demo-ha.sh

bench: build
	@bash bench/run.sh

# 1,000 short calls with random outcomes through the lab (CI runs a 200-call variant in make test).
soak: build
	@bash test/e2e/soak-run.sh

# A real gateway: the config in /etc/sipalg and a systemd unit running sipalg from this checkout.
install: build
	install -d /etc/sipalg
	[ -e /etc/sipalg/sipalg.yaml ] || install -m 0644 sipalg.example.yaml /etc/sipalg/sipalg.yaml
	sed 's#/opt/sipalg#$(CURDIR)#g' systemd/sipalg.service > /etc/systemd/system/sipalg.service
	if command -v systemctl >/dev/null; then systemctl daemon-reload; fi
	@echo "installed: edit /etc/sipalg/sipalg.yaml, then: systemctl enable --now sipalg"

install-rules: build
	$(SIPALG) rules install $(if $(QUEUE),--queue $(QUEUE)) $(if $(SIP_PORTS),--sip-ports $(SIP_PORTS))

uninstall-rules: build
	$(SIPALG) rules uninstall $(if $(QUEUE),--queue $(QUEUE))

clean:
	rm -rf dist native/build build
