"""What is generated from: datasets, classifiers, the target parameters' layout and the
collection of a zoo of checkpoints. Imports only core."""
