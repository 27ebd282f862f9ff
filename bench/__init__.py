"""SlateCRM benchmarks: each figure a ratio against a hand-written baseline in the same run."""
