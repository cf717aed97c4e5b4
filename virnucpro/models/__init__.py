"""The three models and how they run: ESM-2, DNABERT-S, the classifier.

Loading (safely, from the formats users hold), device and precision choice, token-budget
batching, and joining the two embeddings into the classifier's features.
"""
