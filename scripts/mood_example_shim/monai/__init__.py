"""Stand-in for monai 0.1.0, which the example's training data loader imports (see
../README.md); scoring does not use it."""
