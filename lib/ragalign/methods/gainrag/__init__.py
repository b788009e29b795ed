"""GainRAG (arXiv 2505.18710): gain labels of retrieved passages, distilled into a passage selector.

- ``pseudo``: the pseudo-passage the generator writes for a question (instruction, N/A test, generation).
- ``labels``: gain labels of (passage, question, answer) pairs: scoring, cache, cold-run cost, analysis.
- ``selector``: the selector's training groups and test-time candidates, contexts and pseudo ablation.
Nothing is re-exported: import the submodule you use, so a stage depends only on the code it runs.
"""
