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

# The container image, built without any registry: a Debian base made by mmdebstrap from Debian's
# packages (python3 is 3.11 in bookworm), imported into podman, then the Containerfile on it.
IMAGE      ?= localhost/shopsync:latest
IMAGE_BASE ?= localhost/shopsync-base:bookworm
IMAGE_DIR  := .image

image:
	mkdir -p $(IMAGE_DIR)
	test -s $(IMAGE_DIR)/base.tar || mmdebstrap --variant=minbase \
		--include=python3,python3-venv,python-is-python3,ca-certificates bookworm $(IMAGE_DIR)/base.tar
	podman import $(IMAGE_DIR)/base.tar $(IMAGE_BASE)
	podman build --isolation=chroot --format docker --build-arg PYTHON_IMAGE=$(IMAGE_BASE) \
		-f Containerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache
