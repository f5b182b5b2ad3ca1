"""What judges: batched evaluation of many models, metrics, fidelity, projections, the analysis'
scorecard, the verdict, comparisons of two runs and the glossary. Pure computation on tensors and
numbers, no files. Imports core, zoo and generator."""
