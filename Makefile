# Targets are the README's commands; the scripts work without make.
.PHONY: run test setup lint
run: ; scripts/run
test: ; scripts/test
setup: ; scripts/setup --dev
lint: ; .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
