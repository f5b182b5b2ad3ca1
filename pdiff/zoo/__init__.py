"""What is generated from: datasets, classifiers, the target parameters' layout, the collection of
a zoo of checkpoints, checkpoints trained elsewhere (their files and metadata) and neuron
alignment. Imports only core."""
