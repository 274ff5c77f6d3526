# kubegpu.cluster developer entry points. `make test` is what CI runs.
SHELL := /bin/bash

.PHONY: test bootstrap lint sanity unit integration molecule matrix drills bench lab lab-down build

test:            ## Set up everything on a fresh machine, then run the whole suite
	bash scripts/test.sh all

bootstrap:       ## venv, docker.io, debootstrap, dockerd, test-host images
	bash scripts/bootstrap.sh

lint:            ## yamllint + ansible-lint (production profile)
	bash scripts/test.sh lint

sanity:          ## ansible-test sanity
	bash scripts/test.sh sanity

unit:            ## pytest unit tests
	bash scripts/test.sh unit

integration:     ## pytest integration tests on docker test hosts
	bash scripts/test.sh integration integration_part2

molecule:        ## every Molecule scenario
	bash scripts/test.sh molecule

matrix:          ## sanity + unit tests on the lowest and highest ansible-core of meta/runtime.yml (2.17, 2.20)
	bash scripts/test.sh matrix

build:           ## ansible-galaxy collection build + install + FQCN resolution check
	bash scripts/test.sh build

drills:          ## fault drills: unreachable host, held dpkg lock, killed converge (docs/fault-drills.md)
	bash scripts/test.sh drills

bench:           ## fleet benchmark: site.yml (all nine stages) on 1, 4 and 16 test hosts, then Ansible's floor (bench/README.md)
	bash scripts/bootstrap.sh
	.venv/bin/python bench/fleet.py --sizes 1,4,16 --with-floor

lab:             ## bring up the 3-host test fleet and run playbooks/site.yml on it
	bash scripts/lab.sh up

lab-down:        ## tear the lab fleet down
	bash scripts/lab.sh down
