# ociboot: `make demo` boots the demo, `make test` runs the whole suite.
# Both install what they need (QEMU, firmware, docker-registry, dnsmasq) on a
# Debian machine as root.

GO      ?= go
ARCH    ?= amd64
# QEMU_FROM picks the demo's QEMU: machine, or trixie (QEMU 10 from the cache).
QEMU_FROM ?= machine
ARCHES  := amd64 arm64 riscv64 loong64
BIN     := bin
OCIBOOT := $(BIN)/ociboot

# Main packages that only build for EFI (they need the efirt overlay);
# plain go build, vet and test skip them and `ociboot vet` checks them.
EFI_PKGS  := ./cmd/bootd ./tests/selftest ./tests/nicarp ./tests/blocklog ./tests/nicbench ./tests/chainee ./tests/cryptobench
HOST_PKGS  = $(shell $(GO) list ./... | grep -v -x -e '.*/cmd/bootd' -e '.*/tests/selftest' -e '.*/tests/nicarp')

.PHONY: all demo test check fmt vet unit e2e bench clean fuzz foreign

all: $(OCIBOOT) $(BIN)/bootd.efi

$(OCIBOOT): FORCE
	$(GO) build -o $@ ./cmd/ociboot

$(BIN)/bootd.efi: $(OCIBOOT) FORCE
	$(OCIBOOT) build -arch $(ARCH) -o $@ ./cmd/bootd

$(BIN)/selftest.efi: $(OCIBOOT) FORCE
	$(OCIBOOT) build -arch $(ARCH) -o $@ ./tests/selftest

# The demo: Debian's kernel and our initramfs pushed to a registry on
# loopback, bootd built with a plan pointing at it, booted under QEMU+OVMF
# on user networking up to the initramfs's marker.
demo: $(OCIBOOT)
	$(OCIBOOT) demo -arch $(ARCH) -qemu-from $(QEMU_FROM)

test: check
	$(GO) test -count=1 -timeout 40m $(HOST_PKGS)
	$(MAKE) fuzz
	$(MAKE) foreign

# Host tests whose subject differs per architecture, run for real on each
# other one under QEMU's user-mode emulation (amd64 runs them in the suite
# itself): the LoadFile2 routines the Linux stub calls, and the NIC driver,
# whose ring indices must move in single accesses (Go splits 16-bit ones
# into bytes on riscv64).
FOREIGN := arm64:aarch64 riscv64:riscv64 loong64:loongarch64
foreign:
	@command -v qemu-aarch64 >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-user || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-user; }; }
	@set -e; for p in $(FOREIGN); do \
		echo "GOARCH=$${p%%:*} under qemu-$${p#*:}"; \
		GOARCH=$${p%%:*} $(GO) test -count=1 -exec qemu-$${p#*:} -run LoadFile2 ./handoff; \
		GOARCH=$${p%%:*} $(GO) test -count=1 -exec qemu-$${p#*:} ./nic/...; \
	done

# Each fuzz target runs briefly on top of its committed seed corpus (which
# plain `go test` already replays); new crashers land in testdata/fuzz.
FUZZTIME ?= 8s
FUZZ := ./stack:FuzzParseSegment ./services:FuzzParseDHCP ./oci:FuzzDetect ./oci:FuzzSelectPlatform ./oci:FuzzWalkLayer
fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

check: fmt vet

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: $(OCIBOOT)
	$(GO) vet $(HOST_PKGS)
	@set -e; for a in $(ARCHES); do echo "ociboot vet -arch $$a"; $(OCIBOOT) vet -arch $$a $(EFI_PKGS); done

unit:
	$(GO) test -count=1 $(filter-out %/tests,$(HOST_PKGS))

e2e:
	$(GO) test -count=1 -timeout 40m -v ./tests

clean:
	rm -rf $(BIN)

FORCE:

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./tests
