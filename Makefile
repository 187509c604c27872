# The two commands README.md promises. Both set everything up first (idempotent).
.PHONY: setup demo test

setup:
	bash dev/setup.sh

demo: setup
	.venv/bin/python -m dev.loopback.demo

test: setup
	.venv/bin/python -m pytest -p no:cacheprovider tests
