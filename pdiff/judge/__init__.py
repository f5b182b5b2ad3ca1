"""What judges: batched evaluation of many models, metrics, fidelity, projections, the analysis'
scorecard, distances between neuron-aligned models, how a zoo of several runs clusters, the
verdict, comparisons of two runs and the glossary. Pure computation on tensors and
numbers, no files. Imports core, zoo and generator."""
