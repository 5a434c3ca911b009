# bm-lifecycle: the one entry point for people. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
VENV := $(CURDIR)/.venv
STACK := $(CURDIR)/scripts/stack.sh

.PHONY: help install up down status reset demo test lint bench bench-large lab-e2e chaos netbox-snapshot lock image

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: ## install Debian packages, .venv (Python 3.12) and the NetBox venv (idempotent)
	@$(CURDIR)/scripts/install.sh

up: install ## start Redis, PostgreSQL and NetBox under .lab/ (idempotent; seconds when already up)
	@$(STACK) up

down: ## stop what `make up` started (by PID file)
	@$(STACK) down

status: ## show the stack's processes, ports and NetBox version
	@$(STACK) status

reset: ## reset NetBox to the bootstrapped template database and empty the event streams
	@$(STACK) reset

demo: up ## set up everything and run the main job on the local stack
	@$(CURDIR)/scripts/demo.sh

test: install ## lint gates, then the whole pytest suite (starts the stack it needs)
	@$(CURDIR)/scripts/test.sh

lint: install ## the lint gates only (ruff, mypy, ansible-lint, ansible-test sanity)
	@$(CURDIR)/scripts/test.sh --lint-only

bench: up ## print the benchmark numbers (bounded; the pipeline for 1, 10 and 100 servers: about an hour)
	@$(VENV)/bin/python tests/bench/run.py

bench-large: up ## the benchmarks at fleet scale (1,000 servers; for people, not CI)
	@BM_BENCH_LARGE=1 $(VENV)/bin/python tests/bench/run.py

image: install ## build the lab validation image (kernel + initramfs) into .lab/image/ (cached by its inputs' hash)
	@$(CURDIR)/iso/lab/build.sh

lab-e2e: up ## the lab tier (root): namespaces, dhcpd + hook, lldpd ToRs, QEMU servers PXE-booting the image, 1 then 3
	@$(CURDIR)/scripts/lab-e2e.sh

chaos: up ## the chaos suite at fleet size: 50 servers, 5 rulebook SIGKILLs, Redis restarts, NetBox down 30 s, flaky + dead BMC
	@BM_CHAOS=$${BM_CHAOS:-full} $(VENV)/bin/pytest tests/integration/chaos -p no:cacheprovider -s

netbox-snapshot: install ## rebuild the committed migrated NetBox snapshot (runs `migrate`: minutes)
	@$(STACK) snapshot

lock: ## re-resolve requirements/dev.in into requirements/constraints.txt
	@$(CURDIR)/scripts/install.sh --lock
