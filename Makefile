# shopsync — the two commands a user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench chaos lint clean image

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shopsync demo

# The suite is spread over the machine's cores by test file (pytest-xdist); TEST_WORKERS=0 runs it in
# one process, which is easier to read when a test fails.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

lint: $(STAMP)
	$(BIN)/ruff check shopsync tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The container image, built without any registry and without network in the build itself:
#  1. a Debian base made by mmdebstrap from Debian's packages, from the mirrors this machine's apt
#     uses (apt-get indextargets; deb.debian.org when apt knows none), imported into podman;
#  2. a wheelhouse of shopsync and every pinned dependency, built on the host by the venv's pip
#     (bookworm's python3 is 3.11, so the host's Python must be 3.11 for the compiled wheels to fit);
#     SOURCE_DATE_EPOCH makes shopsync's own wheel the same bytes for the same sources, so a rebuild
#     of unchanged code reuses podman's cached layers instead of adding new ones;
#  3. the Containerfile on that base with WHEELS=context: pip installs with --no-index from the
#     wheelhouse. `unshare --net` gives the build only a loopback device, so nothing in it can reach
#     the network (IMAGE_NO_NETWORK= to build without that, e.g. as a user who may not unshare).
# podman and buildah run as root with --isolation=chroot: no OCI runtime, no cgroups, no network
# namespace needed, which is what works inside this CI sandbox.
IMAGE       ?= localhost/shopsync:latest
IMAGE_BASE  ?= localhost/shopsync-base:bookworm
IMAGE_DIR   := .image
IMAGE_SUITE := bookworm
IMAGE_PYTHON := 3.11
IMAGE_NO_NETWORK ?= unshare --net
# $(call apt_repo,SUITE,FALLBACK): the archive URI apt on this machine fetches SUITE's main from.
apt_repo = $(or $(firstword $(shell apt-get indextargets --format '$$(REPO_URI)' 'Release: $(1)' \
	'Identifier: Packages' 'Component: main' 2>/dev/null)),$(2))
IMAGE_MIRROR          ?= $(call apt_repo,$(IMAGE_SUITE),http://deb.debian.org/debian/)
IMAGE_SECURITY_MIRROR ?= $(call apt_repo,$(IMAGE_SUITE)-security,http://deb.debian.org/debian-security/)

# Made once; `rm -rf .image` to make it again (e.g. for the point release's security updates).
$(IMAGE_DIR)/base.tar:
	mkdir -p $(IMAGE_DIR)
	mmdebstrap --quiet --variant=minbase --format=tar \
		--include=python3,python3-venv,python-is-python3,ca-certificates $(IMAGE_SUITE) $@.part \
		"deb $(IMAGE_MIRROR) $(IMAGE_SUITE) main" \
		"deb $(IMAGE_MIRROR) $(IMAGE_SUITE)-updates main" \
		"deb $(IMAGE_SECURITY_MIRROR) $(IMAGE_SUITE)-security main"
	mv $@.part $@

image: $(IMAGE_DIR)/base.tar $(STAMP)
	@$(BIN)/python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(None if v == "$(IMAGE_PYTHON)" else \
		f"make image: the wheelhouse would be built by Python {v} ({sys.executable}), the image runs $(IMAGE_PYTHON)")'
	rm -rf $(IMAGE_DIR)/wheels
	SOURCE_DATE_EPOCH=315532800 $(BIN)/pip wheel --quiet --disable-pip-version-check \
		-c constraints.txt -w $(IMAGE_DIR)/wheels .
	podman import --quiet $(IMAGE_DIR)/base.tar $(IMAGE_BASE)
	$(IMAGE_NO_NETWORK) podman build --isolation=chroot --format docker \
		--build-arg PYTHON_IMAGE=$(IMAGE_BASE) --build-arg WHEELS=context -f Containerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache
