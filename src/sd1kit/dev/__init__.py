"""Developer tools: the tiny-model factory and header manifests used by tests and benchmarks."""
