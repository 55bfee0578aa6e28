"""The demo world (procedural pictures whose content is known), the content checker that scores a picture against
its prompt, the quality evaluation over held-out prompts, and the script that trains tiny SD1-topology models on
the world (`sd1kit dev train-demo`)."""
