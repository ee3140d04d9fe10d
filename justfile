# Common tasks. `just --list` shows them.

# Run the whole test suite (the README's test command).
test:
    cargo test --workspace

# What CI runs: fmt, clippy, tests.
ci:
    .ci/run

# Accept changed fixture snapshots after reviewing them.
snapshots:
    INSTA_UPDATE=always cargo test -p cng-core --test chat_fixtures

# Criterion benchmarks of the translation hot paths.
bench:
    cargo bench -p cng-core --bench translate

# Regenerate the model catalog from ../shared/workers-ai/catalog.json + data/models-extra.json.
catalog:
    python3 scripts/gen-catalog.py
